"""Tests for tfrec_llm.data.vocab."""

import zlib

import numpy as np
import pandas as pd
import pytest

import tfrec_llm  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tfrec_llm.data.vocab import Vocabulary, build_vocabulary
from tfrec_llm.errors import DataError


def test_build_vocabulary_natural_order_and_min_count():
    ids = pd.Series(["10", "2", "10", "33", "2", "10"], dtype="str")
    assert build_vocabulary(ids).tolist() == ["2", "10", "33"]
    assert build_vocabulary(ids, min_count=2).tolist() == ["2", "10"]
    assert build_vocabulary(ids, min_count=3).tolist() == ["10"]
    assert build_vocabulary(["b", "a", "b"]).tolist() == ["a", "b"]
    with pytest.raises(DataError, match=r"min_count=0 must be >= 1"):
        build_vocabulary(ids, min_count=0)


def test_lookup_layout_known_and_oov():
    vocab = Vocabulary(np.array(["2", "10", "33"], dtype=object), num_oov_buckets=3)
    assert vocab.size == 6
    got = vocab.lookup(["33", "2", "y", "10", "z", "x"])
    # known: 3 + position; unknown: crc32 % 3 with crc32("y") = 4225443349 (% 3 = 1),
    # crc32("z") = 1657960367 (% 3 = 2), crc32("x") = 2363233923 (% 3 = 0).
    assert [zlib.crc32(c) for c in (b"y", b"z", b"x")] == [4225443349, 1657960367, 2363233923]
    assert got.tolist() == [5, 3, 1, 4, 2, 0]
    assert got.dtype == np.int64


def test_lookup_matches_keras_string_lookup():
    import tensorflow as tf

    ids = build_vocabulary(["5", "1", "12", "1"])
    queries = ["12", "1", "unknown", "5", "99"]
    layer = tf.keras.layers.StringLookup(vocabulary=list(ids), num_oov_indices=1)
    expected = layer(tf.constant(queries)).numpy().tolist()
    assert Vocabulary(ids, num_oov_buckets=1).lookup(queries).tolist() == expected
    # Known ids also match with several OOV buckets (only OOV hashing differs).
    layer = tf.keras.layers.StringLookup(vocabulary=list(ids), num_oov_indices=4)
    known = ["12", "1", "5"]
    assert (
        Vocabulary(ids, num_oov_buckets=4).lookup(known).tolist()
        == layer(tf.constant(known)).numpy().tolist()
    )


def test_vocabulary_errors():
    with pytest.raises(
        DataError,
        match=r"1 ids are not in the vocabulary, e.g. 'z', and "
        r"num_oov_buckets=0",
    ):
        Vocabulary(np.array(["a"], dtype=object), num_oov_buckets=0).lookup(["a", "z"])
    with pytest.raises(DataError, match=r"Vocabulary ids must be unique"):
        Vocabulary(np.array(["a", "a"], dtype=object))
    with pytest.raises(DataError, match=r"num_oov_buckets=-1 must be >= 0"):
        Vocabulary(np.array(["a"], dtype=object), num_oov_buckets=-1)
    with pytest.raises(DataError, match=r"Vocabulary ids must all be str"):
        Vocabulary(np.array([1, 2], dtype=object))
