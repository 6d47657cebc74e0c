"""Tests for tfrec_llm.data.splits against docs/evaluation.md.

Expected values come from hand calculation (tiny frames) or from independent pure-Python /
pandas re-derivations of the protocol written in this file (never from the code under test).
"""

import importlib.util
import logging
import os

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.config.choices import SPLIT_NAMES
from tfrec_llm.data import splits
from tfrec_llm.data.schema import RecDataset
from tfrec_llm.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- helpers


def _frame(rows):
    """rows: (user, item, timestamp) triples -> canonical interactions."""
    users, items, times = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype="str"),
            "item_id": pd.Series(items, dtype="str"),
            "timestamp": np.asarray(times, dtype=np.int64),
        }
    )


def _dataset(rows, item_ids=None, user_ids=None):
    inter = _frame(rows)
    items = sorted({r[1] for r in rows} | set(item_ids or ()), key=int)
    users = sorted({r[0] for r in rows} | set(user_ids or ()), key=int)
    return RecDataset(
        name="toy",
        interactions=inter,
        items=pd.DataFrame({"item_id": pd.Series(items, dtype="str")}),
        users=pd.DataFrame({"user_id": pd.Series(users, dtype="str")}),
    )


def _lists(arrays):
    return [list(a) for a in arrays]


def _pairs(frame):
    return list(zip(frame["user_id"], frame["item_id"], strict=True))


# ----------------------------------------------------------------------------- hand-made cases

# Interactions in scrambled input order. Pair order (user, item) in natural order:
#   (1,1) (1,2) (1,5) (2,1) (2,3) (10,1)
# tie_key = default_rng(42).random(6) in that order:
#   0.77395605 0.43887844 0.85859792 0.69736803 0.09417735 0.97562235
TIE_ROWS = [
    ("2", "1", 60),
    ("1", "2", 200),
    ("10", "1", 10),
    ("1", "5", 100),
    ("2", "3", 50),
    ("1", "1", 200),
]
TIE_KEYS = {
    ("1", "1"): 0.77395605,
    ("1", "2"): 0.43887844,
    ("1", "5"): 0.85859792,
    ("2", "1"): 0.69736803,
    ("2", "3"): 0.09417735,
    ("10", "1"): 0.97562235,
}


def test_assign_tie_keys_follows_natural_user_item_order():
    frame = _frame(TIE_ROWS)
    out = splits.assign_tie_keys(frame)
    expected = [TIE_KEYS[(u, i)] for u, i, _ in TIE_ROWS]
    np.testing.assert_allclose(out["tie_key"].to_numpy(), expected, atol=1e-8)
    assert "tie_key" not in frame.columns  # input untouched


def test_loo_breaks_timestamp_ties_by_tie_key_not_item_id():
    # User 1: item 5 at t=100, items 1 and 2 both at t=200.
    # tie_key(1,2)=0.439 < tie_key(1,1)=0.774, so the order is 5, 2, 1:
    # TEST = "1", VALID = "2" (an item-id tie break would give TEST "2").
    split = splits.make_split(_dataset(TIE_ROWS), "loo")
    assert split.test.user_ids.tolist() == ["1"]
    assert _lists(split.test.targets) == [["1"]]
    assert _lists(split.test.histories) == [["5", "2"]]
    assert sorted(split.test.exclude[0]) == ["2", "5"]
    assert _lists(split.valid.targets) == [["2"]]
    assert _lists(split.valid.histories) == [["5"]]
    assert split.valid.candidate_ids is None and split.test.candidate_ids is None
    # Users 2 (2 interactions) and 10 (1) stay in TRAIN; users in natural order 1, 2, 10.
    assert _pairs(split.train) == [("1", "5"), ("2", "3"), ("2", "1"), ("10", "1")]
    assert _pairs(split.train_valid) == [
        ("1", "5"),
        ("1", "2"),
        ("2", "3"),
        ("2", "1"),
        ("10", "1"),
    ]
    assert split.train.columns.tolist() == ["user_id", "item_id", "timestamp", "tie_key"]
    assert split.item_ids.tolist() == ["1", "2", "3", "5"]
    assert split.cold_item_ids.size == 0 and split.cold_user_ids.size == 0


def test_loo_logs_users_kept_in_train(caplog):
    with caplog.at_level(logging.INFO, logger="tfrec_llm.data.splits"):
        splits.make_split(_dataset(TIE_ROWS), "loo")
    assert "loo: 2 users with fewer than 3 interactions stay in TRAIN only." in caplog.text


def test_tie_priority_is_fixed_permutation():
    prio = splits.tie_priority(5)
    np.testing.assert_array_equal(prio, np.random.default_rng(12345).permutation(5))
    assert sorted(prio.tolist()) == [0, 1, 2, 3, 4]


def test_make_split_rejects_unknown_protocol():
    with pytest.raises(
        ConfigError,
        match=r"protocol='random' is unknown; use one of "
        r"\('loo', 'cold-items', 'cold-users'\) \(or 'cold-users-select' / 'cold-items-select' to "
        r"choose cold-user / cold-item settings\)",
    ):
        splits.make_split(_dataset(TIE_ROWS), "random")


def test_split_rejects_items_missing_from_catalog():
    items = pd.DataFrame({"item_id": pd.Series(["1", "2"], dtype="str")})
    with pytest.raises(
        DataError,
        match=r"split_leave_last_out: 2 interactions name item_id "
        r"values missing from the items frame, e.g. '5'",
    ):
        splits.split_leave_last_out(_frame(TIE_ROWS), items)


def test_split_functions_do_not_mutate_inputs():
    ds = _dataset(TIE_ROWS)
    before = ds.interactions.copy()
    splits.split_leave_last_out(ds.interactions, ds.items)
    splits.split_cold_items(ds.interactions, ds.items, seed=42)
    splits.split_cold_users(ds.interactions, ds.items, ds.users, seed=42)
    pd.testing.assert_frame_equal(ds.interactions, before)


def test_cold_users_first_five_are_history_and_short_users_are_left_out():
    # 5 users -> round(0.2 * 5) = 1 cold user = default_rng(7).choice(["1".."5"], 1).
    cold = str(np.random.default_rng(7).choice(np.array(["1", "2", "3", "4", "5"]), 1)[0])
    rows = [(u, str(k), 100 * k) for u in "12345" for k in range(1, 8)]
    ds = _dataset(rows)
    split = splits.split_cold_users(ds.interactions, ds.items, ds.users, seed=7)
    assert split.cold_user_ids.tolist() == [cold]
    assert _lists(split.test.histories) == [["1", "2", "3", "4", "5"]]
    assert _lists(split.test.targets) == [["6", "7"]]
    assert cold not in set(split.train["user_id"]) | set(split.train_valid["user_id"])
    # A cold user with exactly 5 interactions has no target.
    short = [r for r in rows if r[0] != cold or int(r[1]) <= 5]
    ds = _dataset(short)
    split = splits.split_cold_users(ds.interactions, ds.items, ds.users, seed=7)
    assert split.test.user_ids.size == 0


def test_repeated_targets_are_deduplicated_and_never_excluded():
    # User 1 rates item 3 twice; loo TEST item 3 is also in the history, so user 1 has no
    # reachable target and leaves the test task (but keeps the valid one).
    rows = [("1", "1", 1), ("1", "3", 2), ("1", "2", 3), ("1", "3", 4)]
    split = splits.make_split(_dataset(rows), "loo")
    assert split.test.user_ids.size == 0
    assert _lists(split.valid.targets) == [["2"]]


def test_make_split_is_deterministic():
    ds = _dataset(TIE_ROWS + [("3", str(k), k) for k in range(1, 9)])
    for protocol in SPLIT_NAMES:
        a, b = splits.make_split(ds, protocol), splits.make_split(ds, protocol)
        pd.testing.assert_frame_equal(a.train, b.train)
        pd.testing.assert_frame_equal(a.train_valid, b.train_valid)
        for task_a, task_b in ((a.valid, b.valid), (a.test, b.test)):
            np.testing.assert_array_equal(task_a.user_ids, task_b.user_ids)
            assert _lists(task_a.targets) == _lists(task_b.targets)
            assert _lists(task_a.histories) == _lists(task_b.histories)


# ------------------------------------------------------------------ pure-Python reference


def _reference(rows, catalog, all_users, protocol, seed=42):
    """Pure-Python docs/evaluation.md on (user, item, ts) rows with decimal ids and unique pairs."""
    n = len(rows)
    pair_order = sorted(range(n), key=lambda k: (int(rows[k][0]), int(rows[k][1])))
    draws = np.random.default_rng(42).random(n)
    tie = [0.0] * n
    for rank, k in enumerate(pair_order):
        tie[k] = draws[rank]
    seqs = {}
    for k in sorted(range(n), key=lambda k: (int(rows[k][0]), rows[k][2], tie[k])):
        seqs.setdefault(rows[k][0], []).append(rows[k][1])
    train, valid, test = [], {}, {}
    if protocol == "loo":
        for user, seq in seqs.items():
            if len(seq) >= 3:
                train += [(user, i) for i in seq[:-2]]
                valid[user] = (seq[:-2], [seq[-2]])
                test[user] = (seq[:-1], [seq[-1]])
            else:
                train += [(user, i) for i in seq]
        return train, valid, test
    if protocol == "cold-users-select":
        # C's own cold users leave entirely; C's construction is then repeated on the rest.
        ids = sorted(all_users, key=int)
        c_cold = set(
            np.random.default_rng(seed).choice(ids, size=round(0.2 * len(ids)), replace=False).tolist()
        )
        all_users = [u for u in all_users if u not in c_cold]
        seqs = {u: seq for u, seq in seqs.items() if u not in c_cold}
        protocol = "cold-users"
    if protocol == "cold-items-select":
        # B's own cold items leave every sequence; B's construction is then repeated on the rest.
        ids = sorted(catalog, key=int)
        b_cold = set(
            np.random.default_rng(seed).choice(ids, size=round(0.2 * len(ids)), replace=False).tolist()
        )
        catalog = [i for i in catalog if i not in b_cold]
        seqs = {u: [i for i in seq if i not in b_cold] for u, seq in seqs.items()}
        protocol = "cold-items"
    ids = sorted(catalog if protocol == "cold-items" else all_users, key=int)
    cold = set(np.random.default_rng(seed).choice(ids, size=round(0.2 * len(ids)), replace=False).tolist())
    for user, seq in seqs.items():
        if protocol == "cold-items":
            warm = [i for i in seq if i not in cold]
            cold_seq = [i for i in seq if i in cold]
            if cold_seq:
                test[user] = (warm, cold_seq)
        elif user in cold:
            if len(seq) > 5:
                test[user] = (seq[:5], seq[5:])
            continue
        else:
            warm = seq
        if len(warm) >= 2:
            train += [(user, i) for i in warm[:-1]]
            valid[user] = (warm[:-1], [warm[-1]])
        else:
            train += [(user, i) for i in warm]
    return train, valid, test


def _random_rows(seed, n_users=12, n_items=15):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        count = int(rng.integers(1, 10))
        for item in rng.choice(np.arange(1, n_items + 1), size=count, replace=False):
            rows.append((str(user), str(item), int(rng.integers(0, 4))))  # many equal times
    order = rng.permutation(len(rows))
    return [rows[k] for k in order]


@pytest.mark.parametrize("protocol", SPLIT_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_matches_pure_python_reference(protocol, seed):
    rows = _random_rows(seed)
    catalog = [str(i) for i in range(1, 18)]  # items 16, 17 never interacted with
    all_users = [str(u) for u in range(1, 14)]  # user 13 has no interactions
    ds = _dataset(rows, item_ids=catalog, user_ids=all_users)
    split = splits.make_split(ds, protocol)
    train, valid, test = _reference(rows, catalog, all_users, protocol)
    assert _pairs(split.train) == train
    for task, expected in ((split.valid, valid), (split.test, test)):
        assert task.user_ids.tolist() == list(expected)
        assert _lists(task.histories) == [h for h, _ in expected.values()]
        assert _lists(task.targets) == [t for _, t in expected.values()]
        assert [sorted(e) for e in _lists(task.exclude)] == [sorted(h) for h, _ in expected.values()]
    if protocol == "cold-items":
        np.testing.assert_array_equal(split.test.candidate_ids, split.cold_item_ids)
        assert len(split.cold_item_ids) == round(0.2 * 17)
    if protocol == "cold-items-select":  # 20% of B's 14 warm items stand in, candidates only them
        np.testing.assert_array_equal(split.test.candidate_ids, split.cold_item_ids)
        assert len(split.cold_item_ids) == round(0.2 * 14)
        b_cold = splits.make_split(ds, "cold-items").cold_item_ids
        assert not set(split.cold_item_ids) & set(b_cold)


# ----------------------------------------------------------------------------- real ML-100K

_SPEC = importlib.util.find_spec("recbole")
_FOLDER = (
    os.path.join(next(iter(_SPEC.submodule_search_locations)), "dataset_example", "ml-100k")
    if _SPEC is not None
    else ""
)


@pytest.fixture(scope="module")
def ml100k():
    from tfrec_llm.data.readers import read_movielens_100k

    return read_movielens_100k()


@pytest.fixture(scope="module")
def reference():
    """Independent pandas/numpy derivation from the raw .inter file."""
    inter = pd.read_csv(os.path.join(_FOLDER, "ml-100k.inter"), sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    user = inter["user_id"].to_numpy(np.int64)
    item = inter["item_id"].to_numpy(np.int64)
    ts = inter["timestamp"].to_numpy(np.int64)
    n = len(inter)
    assert not inter.duplicated(["user_id", "item_id"]).any()
    tie = np.empty(n)
    tie[np.lexsort((item, user))] = np.random.default_rng(42).random(n)
    chrono = np.lexsort((tie, ts, user))
    frame = pd.DataFrame({"user": user[chrono], "item": item[chrono]})
    frame["pos"] = frame.groupby("user").cumcount()
    frame["size"] = frame.groupby("user")["item"].transform("size")
    return frame


def test_ml100k_loo_counts_and_targets(ml100k, reference):
    sizes = reference.groupby("user").size()
    assert sizes.min() >= 20  # every user has >= 3 interactions, so loo keeps all 943
    assert (len(reference), len(sizes)) == (100000, 943)
    split = splits.make_split(ml100k, "loo")
    assert len(split.train) == 98114 == 100000 - 2 * 943
    assert len(split.train_valid) == 99057
    assert len(split.valid.user_ids) == 943 and len(split.test.user_ids) == 943
    assert len(split.item_ids) == 1682
    last = reference[reference["pos"] == reference["size"] - 1]
    second = reference[reference["pos"] == reference["size"] - 2]
    assert [int(u) for u in split.test.user_ids] == last["user"].tolist()
    assert [int(t[0]) for t in split.test.targets] == last["item"].tolist()
    assert [int(t[0]) for t in split.valid.targets] == second["item"].tolist()
    first_user = reference[reference["user"] == 1]["item"].tolist()
    assert [int(i) for i in split.test.histories[0]] == first_user[:-1]


def test_ml100k_cold_items_counts(ml100k, reference):
    catalog = np.arange(1, 1683)
    cold = np.random.default_rng(42).choice(catalog, size=round(0.2 * 1682), replace=False)
    is_cold = reference["item"].isin(cold)
    warm = reference[~is_cold]
    warm_sizes = warm.groupby("user").size()
    ref = {
        "cold": len(cold),
        "warm": len(warm),
        "valid_users": int((warm_sizes >= 2).sum()),
        "train": len(warm) - int((warm_sizes >= 2).sum()),
        "test_users": reference[is_cold]["user"].nunique(),
        "targets": int(is_cold.sum()),
    }
    pinned = {
        "cold": 336,
        "warm": 80272,
        "valid_users": 943,
        "train": 79329,
        "test_users": 940,
        "targets": 19728,
    }
    assert ref == pinned
    split = splits.make_split(ml100k, "cold-items")
    assert sorted(int(i) for i in split.cold_item_ids) == sorted(cold.tolist())
    got = {
        "cold": len(split.cold_item_ids),
        "warm": len(split.train_valid),
        "valid_users": len(split.valid.user_ids),
        "train": len(split.train),
        "test_users": len(split.test.user_ids),
        "targets": sum(len(t) for t in split.test.targets),
    }
    assert got == pinned
    assert not set(split.train_valid["item_id"]) & set(split.cold_item_ids)
    np.testing.assert_array_equal(split.test.candidate_ids, split.cold_item_ids)


def test_ml100k_cold_users_counts(ml100k, reference):
    users = np.arange(1, 944)
    cold = np.random.default_rng(42).choice(users, size=round(0.2 * 943), replace=False)
    is_cold = reference["user"].isin(cold)
    warm_sizes = reference[~is_cold].groupby("user").size()
    cold_sizes = reference[is_cold].groupby("user").size()
    ref = {
        "cold": len(cold),
        "warm": int((~is_cold).sum()),
        "valid_users": int((warm_sizes >= 2).sum()),
        "train": int((~is_cold).sum()) - int((warm_sizes >= 2).sum()),
        "test_users": int((cold_sizes > 5).sum()),
        "targets": int((cold_sizes - 5).clip(lower=0).sum()),
    }
    pinned = {
        "cold": 189,
        "warm": 81550,
        "valid_users": 754,
        "train": 80796,
        "test_users": 189,
        "targets": 17505,
    }
    assert ref == pinned
    split = splits.make_split(ml100k, "cold-users")
    assert sorted(int(u) for u in split.cold_user_ids) == sorted(cold.tolist())
    got = {
        "cold": len(split.cold_user_ids),
        "warm": len(split.train_valid),
        "valid_users": len(split.valid.user_ids),
        "train": len(split.train),
        "test_users": len(split.test.user_ids),
        "targets": sum(len(t) for t in split.test.targets),
    }
    assert got == pinned
    assert all(len(h) == 5 for h in split.test.histories)
    assert split.test.candidate_ids is None


def test_ml100k_cold_user_selection_never_reads_protocol_c_users(ml100k, reference):
    users = np.arange(1, 944)
    c_cold = np.random.default_rng(42).choice(users, size=round(0.2 * 943), replace=False)
    warm = np.setdiff1d(users, c_cold)
    stand_in = np.random.default_rng(42).choice(warm, size=round(0.2 * len(warm)), replace=False)
    split = splits.make_split(ml100k, "cold-users-select")
    assert split.protocol == "cold-users-select"
    assert sorted(int(u) for u in split.cold_user_ids) == sorted(stand_in.tolist())
    assert len(split.cold_user_ids) == 151
    c_users = {str(u) for u in c_cold}
    seen = set(split.train_valid["user_id"]) | set(split.valid.user_ids) | set(split.test.user_ids)
    assert not seen & c_users
    assert not set(split.train_valid["user_id"]) & set(split.cold_user_ids)
    rest = reference[~reference["user"].isin(c_cold) & ~reference["user"].isin(stand_in)]
    assert len(split.train_valid) == len(rest)
    sizes = reference[reference["user"].isin(stand_in)].groupby("user").size()
    assert len(split.test.user_ids) == int((sizes > 5).sum())
    assert sum(len(t) for t in split.test.targets) == int((sizes - 5).clip(lower=0).sum())
    first5 = reference[reference["pos"] < 5].groupby("user")["item"].agg(list)
    for user, history in zip(split.test.user_ids, split.test.histories, strict=True):
        assert [int(i) for i in history] == first5[int(user)]


def test_ml100k_cold_item_selection_never_reads_protocol_b_items(ml100k, reference):
    catalog = np.arange(1, 1683)
    b_cold = np.random.default_rng(42).choice(catalog, size=round(0.2 * 1682), replace=False)
    warm = np.setdiff1d(catalog, b_cold)
    stand_in = np.random.default_rng(42).choice(warm, size=round(0.2 * len(warm)), replace=False)
    split = splits.make_split(ml100k, "cold-items-select")
    assert split.protocol == "cold-items-select"
    assert sorted(int(i) for i in split.cold_item_ids) == sorted(stand_in.tolist())
    assert len(split.cold_item_ids) == 269
    np.testing.assert_array_equal(split.test.candidate_ids, split.cold_item_ids)
    b_items = {str(i) for i in b_cold}
    seen = set(split.train_valid["item_id"]) | {i for t in split.test.targets for i in t}
    assert not seen & b_items
    assert not set(split.train_valid["item_id"]) & set(split.cold_item_ids)
    rest = reference[~reference["item"].isin(b_cold) & ~reference["item"].isin(stand_in)]
    assert len(split.train_valid) == len(rest)
    held = reference[reference["item"].isin(stand_in)]
    assert len(split.test.user_ids) == held["user"].nunique()
    assert sum(len(t) for t in split.test.targets) == len(held)
    rest_sizes = rest.groupby("user").size()
    assert len(split.valid.user_ids) == int((rest_sizes >= 2).sum())


@pytest.mark.parametrize(
    ("protocol", "rows", "empty"),
    [
        ("loo", [("1", "1", 1), ("1", "2", 2), ("2", "1", 3)], "VALID and TEST empty"),
        ("loo", [], "TRAIN and VALID and TEST empty"),
        ("cold-items", [("1", "1", 1), ("1", "2", 2)], "empty"),
    ],
)
def test_too_few_interactions_to_split_is_one_sentence(protocol, rows, empty):
    with pytest.raises(
        DataError,
        match=rf"^too few interactions to split under protocol '{protocol}': .*{empty}\)\. It needs",
    ):
        splits.check_usable(_dataset(rows), splits.make_split(_dataset(rows), protocol))


def test_a_split_with_every_part_is_usable():
    ds = _dataset(TIE_ROWS + [("3", str(k), k) for k in range(1, 9)])
    splits.check_usable(ds, splits.make_split(ds, "loo"))  # raises nothing
