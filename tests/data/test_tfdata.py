"""Tests for tfrec_llm.data.tfdata: causal histories and the training dataset."""

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.data.tfdata import causal_histories, make_dataset, training_examples
from tfrec_llm.errors import DataError


def test_causal_histories_hand_case():
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([5, 6, 7, 8, 9])
    # user 0: [], [5], [5, 6]; user 1: [], [8]; most recent last, -1 on the left.
    expected = np.array([[-1, -1], [-1, 5], [5, 6], [-1, -1], [-1, 8]])
    np.testing.assert_array_equal(causal_histories(users, items, 2), expected)


def test_causal_histories_match_python_reference():
    rng = np.random.default_rng(0)
    users = np.sort(rng.integers(0, 5, size=60))
    items = rng.integers(0, 30, size=60)
    length = 4
    got = causal_histories(users, items, length)
    for i in range(60):
        prev = [items[j] for j in range(i) if users[j] == users[i]][-length:]
        ref = [-1] * (length - len(prev)) + prev
        assert list(got[i]) == ref


def test_training_examples_and_probabilities(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    ex = training_examples(split.train, catalog, history_length=5)
    n = len(split.train)
    assert ex["history"].shape == (n, 5) and ex["user"].shape == (n,)
    # item_probability is the item's share of TRAIN.
    counts = split.train["item_id"].value_counts()
    first_item = split.train["item_id"].iloc[0]
    assert np.isclose(ex["item_probability"][0], counts[first_item] / n)
    # the first interaction of each user has an empty history
    first_rows = ~split.train["user_id"].duplicated().to_numpy()
    assert (ex["history"][first_rows] == -1).all()


def test_make_dataset_batches_all_examples_once_per_epoch(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    ex = training_examples(split.train, catalog, history_length=3)
    ds = make_dataset(ex, batch_size=len(ex["item"]), seed=1)
    batch = next(iter(ds))
    assert sorted(batch["item"].numpy().tolist()) == sorted(ex["item"].tolist())
    assert batch["history"].dtype == tf.int32


def test_no_training_examples_is_a_data_error_not_a_tensorflow_one():
    empty = {"user": np.zeros(0, np.int32), "sequence": np.zeros((0, 3), np.int32)}
    with pytest.raises(DataError, match=r"^no training examples in TRAIN \(with model\.objective=next_item"):
        make_dataset(empty, batch_size=4, shuffle_buffer=100)
