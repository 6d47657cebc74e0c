"""Tests for tfrec_llm.data.tfdata.next_item_windows: SASRec windows cut from each user's end."""

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.schema import RecDataset
from tfrec_llm.data.splits import make_split
from tfrec_llm.data.tfdata import make_dataset, next_item_windows
from tfrec_llm.errors import DataError

ITEMS = [str(i) for i in range(1, 10)]  # catalog index = int(id) - 1


def _frame(rows):
    """Canonical interactions from (user, item) pairs, in the given (chronological) order."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["timestamp"] = np.arange(1, len(rows) + 1, dtype=np.int64) * 10
    return frame


def _catalog(frame):
    dataset = RecDataset(
        name="windows",
        interactions=frame,
        items=pd.DataFrame({"item_id": ITEMS}),
        users=pd.DataFrame({"user_id": sorted(frame["user_id"].unique())}),
    )
    catalog = build_catalog(dataset, make_split(dataset, "loo"))
    assert list(catalog.item_index(ITEMS)) == list(range(len(ITEMS)))
    return catalog


def _rows(windows):
    """{(user index, window)} — the order of the windows is not part of the contract."""
    got = {(int(u), tuple(int(i) for i in s)) for u, s in zip(windows["user"], windows["sequence"])}
    assert len(got) == len(windows["user"]), "a window is repeated"
    return got


def test_seven_items_give_two_full_windows_and_drop_the_lone_oldest_item():
    frame = _frame([("a", str(i)) for i in range(1, 8)])  # items 1..7 = indices 0..6
    windows = next_item_windows(frame, _catalog(frame), history_length=2)
    # from the end: [5, 6, 7], [2, 3, 4], [1] (one real item: no target, dropped)
    assert _rows(windows) == {(0, (4, 5, 6)), (0, (1, 2, 3))}
    assert windows["sequence"].shape == (2, 3)
    assert windows["user"].dtype == np.int32 and windows["sequence"].dtype == np.int32
    assert windows["sequence_probability"].dtype == np.float32


def test_the_oldest_window_is_left_padded_when_it_has_two_items_or_more():
    frame = _frame([("a", str(i)) for i in range(1, 6)])  # 5 items, width 3: [3, 4, 5], [1, 2]
    windows = next_item_windows(frame, _catalog(frame), history_length=2)
    assert _rows(windows) == {(0, (2, 3, 4)), (0, (-1, 0, 1))}


def test_a_user_with_one_interaction_gives_no_window():
    frame = _frame([("a", "3"), ("b", "1"), ("b", "2"), ("b", "4")])
    windows = next_item_windows(frame, _catalog(frame), history_length=3)
    # user a (index 0) has no target; user b (index 1) gives one window left-padded to 4
    assert _rows(windows) == {(1, (-1, 0, 1, 3))}


def test_users_in_a_grouped_frame_keep_their_own_windows():
    # Grouped by user, but not in user-index order: c, a, b (indices 2, 0, 1).
    rows = [("c", "9"), ("c", "8"), ("c", "7"), ("c", "6"), ("c", "5")]
    rows += [("a", "1"), ("a", "2"), ("a", "3")]
    rows += [("b", "4"), ("b", "4"), ("b", "2"), ("b", "6")]
    frame = _frame(rows)
    windows = next_item_windows(frame, _catalog(frame), history_length=2)
    assert _rows(windows) == {
        (2, (6, 5, 4)),  # c: [7, 6, 5]
        (2, (-1, 8, 7)),  # c: [9, 8]
        (0, (0, 1, 2)),  # a: [1, 2, 3]
        (1, (3, 1, 5)),  # b: [4, 2, 6]; its oldest item alone is dropped
    }


def test_sequence_probability_is_the_item_share_at_real_positions_and_zero_at_padding():
    rows = [("a", "1"), ("a", "2"), ("a", "1"), ("a", "3"), ("b", "1"), ("b", "4"), ("b", "5")]
    frame = _frame(rows)
    windows = next_item_windows(frame, _catalog(frame), history_length=4)
    share = {0: 3 / 7, 1: 1 / 7, 2: 1 / 7, 3: 1 / 7, 4: 1 / 7}  # item "1" is 3 of the 7 rows
    sequence, probability = windows["sequence"], windows["sequence_probability"]
    assert (sequence == -1).any(), "the case must hold padding"
    for row, prob in zip(sequence, probability):
        expected = [share[i] if i >= 0 else 0.0 for i in row]
        np.testing.assert_allclose(prob, expected, rtol=1e-6)
    assert (probability[sequence < 0] == 0).all()


def test_unknown_item_raises_data_error():
    frame = _frame([("a", "1"), ("a", "2")])
    catalog = _catalog(frame)
    bad = _frame([("a", "1"), ("a", "99")])
    with pytest.raises(DataError, match=r"outside the catalog, e.g. \['99'\]"):
        next_item_windows(bad, catalog, history_length=2)


def test_windows_of_a_real_split_cover_every_training_transition(tiny_dataset):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    windows = next_item_windows(split.train, catalog, history_length=4)
    # Every consecutive (item, next item) pair of a user's TRAIN rows is an input/target pair of
    # exactly one window, except the pairs that straddle two windows.
    pairs = 0
    for row in windows["sequence"]:
        real = row[row >= 0]
        pairs += len(real) - 1
    per_user = split.train.groupby("user_id", sort=False).size().to_numpy()
    width = 5
    straddling = (per_user - 1) // width  # window boundaries inside each user's sequence
    assert pairs == int((per_user - 1 - straddling).sum())
    # and make_dataset batches these windows (no "item" key needed)
    batch = next(iter(make_dataset(windows, batch_size=8, seed=0)))
    assert batch["sequence"].shape == (8, width)


def test_an_empty_frame_is_a_data_error_not_an_index_error():
    frame = _frame([("a", "1"), ("a", "2")])
    catalog = _catalog(frame)
    with pytest.raises(DataError, match="no interactions"):
        next_item_windows(frame.iloc[:0], catalog, history_length=2)


def test_fewer_windows_than_a_batch_still_give_one_training_batch():
    frame = _frame([("a", str(i)) for i in range(1, 8)])
    windows = next_item_windows(frame, _catalog(frame), history_length=2)  # 2 windows
    batches = list(make_dataset(windows, batch_size=128, seed=0))
    assert len(batches) == 1 and batches[0]["sequence"].shape == (2, 3)
    # With at least a batch of examples, the partial last batch is still dropped.
    assert len(list(make_dataset(windows, batch_size=1, seed=0))) == 2
    assert [b["x"].shape[0] for b in make_dataset({"x": np.arange(5)}, batch_size=2, seed=0)] == [2, 2]
