"""Tests for tfrec_llm.evaluation.peers: EASE, ItemKNN, ALS, BPR and tune_on_valid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import tfrec_llm  # noqa: F401  (selects Keras 2 before anything imports TF)
from tfrec_llm.data.splits import EvalTask, Split
from tfrec_llm.errors import ConfigError, DataError
from tfrec_llm.evaluation.peers import (
    ALSScorer,
    BPRScorer,
    EASEScorer,
    ItemKNNScorer,
    tune_on_valid,
)
from tfrec_llm.evaluation.protocols import evaluate


def _frame(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in pairs],
            "item_id": [i for _, i in pairs],
            "timestamp": np.arange(len(pairs), dtype=np.int64),
            "tie_key": np.zeros(len(pairs)),
        }
    )


def _task(
    name: str,
    users: list[str],
    histories: list[list[str]],
    targets: list[list[str]],
) -> EvalTask:
    return EvalTask(
        name=name,
        user_ids=np.array(users),
        histories=tuple(np.array(h, dtype=object) for h in histories),
        exclude=tuple(np.array(h, dtype=object) for h in histories),
        targets=tuple(np.array(t, dtype=object) for t in targets),
        candidate_ids=None,
    )


def _split(
    item_ids: list[str],
    train: pd.DataFrame,
    train_valid: pd.DataFrame | None = None,
    valid: EvalTask | None = None,
) -> Split:
    frames = [train] if train_valid is None else [train, train_valid]
    users = sorted(set(pd.concat(frames)["user_id"]))
    dummy = _task("valid", users[:1], [[]], [[item_ids[0]]])
    return Split(
        protocol="loo",
        item_ids=np.array(item_ids),
        train=train,
        train_valid=train if train_valid is None else train_valid,
        valid=dummy if valid is None else valid,
        test=dummy,
        cold_item_ids=np.array([], dtype=str),
        cold_user_ids=np.array([], dtype=str),
    )


def _from_matrix(x: np.ndarray, item_ids: list[str]) -> pd.DataFrame:
    return _frame([(f"u{u}", item_ids[i]) for u, i in zip(*np.nonzero(x), strict=True)])


# ---------------------------------------------------------------- EASE

EASE_X = np.array(
    [
        [1, 1, 0, 0, 1],
        [1, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 0, 1],
        [0, 0, 0, 1, 1],
        [1, 0, 0, 1, 0],
    ],
    dtype=float,
)
# Natural order differs from lexicographic ("10" < "2" < "33" as strings).
EASE_ITEMS = ["2", "5", "10", "33", "100"]


def _ease_by_columns(x: np.ndarray, l2: float) -> np.ndarray:
    """Solves min ||X - XB||^2 + l2 ||B||^2, diag(B) = 0, one ridge regression per column."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = np.vstack([x[:, others], math.sqrt(l2) * np.eye(n - 1)])
        y = np.concatenate([x[:, j], np.zeros(n - 1)])
        b[others, j] = np.linalg.lstsq(a, y, rcond=None)[0]
    return b


@pytest.mark.parametrize("l2", [0.5, 3.0, 500.0])
def test_ease_matches_columnwise_constrained_ridge(l2: float) -> None:
    scorer = EASEScorer(_split(EASE_ITEMS, _from_matrix(EASE_X, EASE_ITEMS)), l2=l2)
    np.testing.assert_allclose(scorer.B, _ease_by_columns(EASE_X, l2), atol=1e-6)
    assert np.all(np.diag(scorer.B) == 0.0)


def test_ease_scores_history_vector_in_catalog_order() -> None:
    scorer = EASEScorer(_split(EASE_ITEMS, _from_matrix(EASE_X, EASE_ITEMS)), l2=2.0)
    expected_b = _ease_by_columns(EASE_X, 2.0)
    # A cold user (not in the fit) with history {"10", "2"} and one with an empty history.
    scores = scorer.score(np.array(["new", "u0"]), [np.array(["10", "2", "10"]), np.array([])])
    assert scores.shape == (2, 5)
    np.testing.assert_allclose(scores[0], expected_b[0] + expected_b[2], atol=1e-6)
    np.testing.assert_allclose(scores[1], np.zeros(5))
    assert scorer.name == "EASE" and scorer.params == {"l2": 2.0}


def test_refit_on_train_valid_uses_that_frame_and_says_so() -> None:
    train = _frame([("a", "1"), ("b", "2")])
    train_valid = _frame([("a", "1"), ("a", "2"), ("b", "2")])
    scorer = EASEScorer(_split(["1", "2"], train, train_valid), l2=1.0, fit_on="train_valid")
    # X = [[1, 1], [0, 1]]: G + I = [[2, 1], [1, 3]]; P = [[3, -1], [-1, 2]] / 5;
    # B_01 = -P_01 / P_11 = 1/2, B_10 = -P_10 / P_00 = 1/3.
    np.testing.assert_allclose(scorer.B, [[0.0, 0.5], [1 / 3, 0.0]], atol=1e-12)
    assert scorer.fit_on == "train_valid" and "refit on train_valid" in scorer.name
    assert EASEScorer(_split(["1", "2"], train, train_valid), l2=1.0).B[0, 1] == 0.0


# ---------------------------------------------------------------- ItemKNN

# Users: u0 {a, b}, u1 {a, b, c}, u2 {a}, u3 {c}. |a| = sqrt(3), |b| = |c| = sqrt(2);
# co-occurrence ab = 2, ac = 1, bc = 1 -> cos ab = 2/sqrt(6), ac = 1/sqrt(6), bc = 1/2.
KNN_FRAME = _frame(
    [("u0", "a"), ("u0", "b"), ("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "a"), ("u3", "c")]
)
AB, AC, BC = 2 / math.sqrt(6), 1 / math.sqrt(6), 0.5


def test_itemknn_full_cosine_matches_hand_computation() -> None:
    scorer = ItemKNNScorer(_split(["a", "b", "c"], KNN_FRAME), k_neighbors=5)
    np.testing.assert_allclose(scorer.S, [[0, AB, AC], [AB, 0, BC], [AC, BC, 0]], atol=1e-12)
    scores = scorer.score(np.array(["x"]), [np.array(["a", "c"])])
    np.testing.assert_allclose(scores, [[AC, AB + BC, AC]], atol=1e-12)


def test_itemknn_keeps_top_k_neighbours_per_item_column() -> None:
    scorer = ItemKNNScorer(_split(["a", "b", "c"], KNN_FRAME), k_neighbors=1)
    # S[i, j]: neighbour i of target item j. Column a keeps b (AB > AC); column b keeps a
    # (AB > BC); column c keeps b (BC > AC).
    np.testing.assert_allclose(scorer.S, [[0, AB, 0], [AB, 0, BC], [0, 0, 0]], atol=1e-12)
    scores = scorer.score(np.array(["u0", "u2"]), [np.array(["b"]), np.array(["a"])])
    np.testing.assert_allclose(scores, [[AB, 0, BC], [0, AB, 0]], atol=1e-12)


def test_itemknn_shrink_damps_the_denominator() -> None:
    scorer = ItemKNNScorer(_split(["a", "b", "c"], KNN_FRAME), shrink=1.0)
    assert scorer.S[0, 1] == pytest.approx(2 / (math.sqrt(6) + 1))
    assert scorer.S[1, 2] == pytest.approx(1 / 3)


# ---------------------------------------------------------------- ALS / BPR

ITEMS_13 = [str(i) for i in range(1, 14)]  # natural order; "13" is never interacted with
CLUSTER_A, CLUSTER_B = ITEMS_13[:6], ITEMS_13[6:12]


def _clustered_split() -> tuple[Split, np.ndarray, list[np.ndarray]]:
    """30 users; even users take 4 consecutive items of cluster A, odd ones of cluster B."""
    pairs = []
    for u in range(30):
        own = CLUSTER_A if u % 2 == 0 else CLUSTER_B
        pairs += [(f"u{u}", own[(u // 2 + j) % 6]) for j in range(4)]
    train = _frame(pairs)
    users = np.array([f"u{u}" for u in range(30)])
    histories = [train.loc[train["user_id"] == u, "item_id"].to_numpy() for u in users]
    return _split(ITEMS_13, train), users, histories


def _assert_clusters_separate(scores: np.ndarray, users: np.ndarray, histories: list[np.ndarray]) -> None:
    col = {item: j for j, item in enumerate(ITEMS_13)}
    for row, user in enumerate(users):
        own, other = (CLUSTER_A, CLUSTER_B) if int(user[1:]) % 2 == 0 else (CLUSTER_B, CLUSTER_A)
        unseen_own = [col[i] for i in own if i not in set(histories[row])]
        assert scores[row, unseen_own].min() > scores[row, [col[i] for i in other]].max(), user


def test_als_ranks_own_cluster_first_and_is_deterministic() -> None:
    split, users, histories = _clustered_split()
    scorer = ALSScorer(split, factors=2, regularization=0.1, random_state=3)
    scores = scorer.score(users, histories)
    assert scores.shape == (30, 13)
    _assert_clusters_separate(scores, users, histories)
    again = ALSScorer(split, factors=2, regularization=0.1, random_state=3)
    np.testing.assert_array_equal(again.score(users, histories), scores)
    # The item with no fit interaction gets zero factors, hence score 0.
    np.testing.assert_array_equal(scores[:, 12], 0.0)


def test_als_folds_in_unknown_users_and_on_request_every_user() -> None:
    split, _, _ = _clustered_split()
    scorer = ALSScorer(split, factors=2, regularization=0.1, random_state=3)
    history = [np.array(["7", "8", "9"])]
    cold = scorer.score(np.array(["stranger"]), history)
    _assert_clusters_separate(cold, np.array(["u1"]), history)  # u1: an odd user, cluster B
    # u0 was fitted on cluster A; folded in from a cluster-B history it now prefers B.
    folding = ALSScorer(split, factors=2, regularization=0.1, random_state=3, recalculate_user=True)
    np.testing.assert_allclose(folding.score(np.array(["u0"]), history), cold, atol=1e-6)


def test_bpr_ranks_own_cluster_first_and_is_deterministic() -> None:
    split, users, histories = _clustered_split()
    scorer = BPRScorer(split, factors=4, learning_rate=0.05, random_state=1)
    scores = scorer.score(users, histories)
    assert scores.shape == (30, 13)
    _assert_clusters_separate(scores, users, histories)
    again = BPRScorer(split, factors=4, learning_rate=0.05, random_state=1)
    np.testing.assert_array_equal(again.score(users, histories), scores)


def test_bpr_scores_unknown_users_by_item_bias() -> None:
    split, _, _ = _clustered_split()
    scorer = BPRScorer(split, factors=4, learning_rate=0.05, random_state=1)
    scores = scorer.score(np.array(["stranger"]), [np.array(["1"])])
    np.testing.assert_allclose(scores[0], scorer.model.item_factors[:, -1], atol=1e-7)


# ---------------------------------------------------------------- tune_on_valid


class _PlantedScorer:
    """Puts each user's valid target at rank params["rank"] (no exclusions in the task)."""

    name = "Planted"

    def __init__(self, params: dict, items: list[str], targets: dict[str, str]) -> None:
        self.params, self._items, self._targets = params, items, targets

    def score(self, user_ids: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(user_ids), len(self._items)))
        for row, user in enumerate(user_ids):
            order = [i for i in self._items if i != self._targets[user]]
            order.insert(self.params["rank"] - 1, self._targets[user])
            for position, item in enumerate(order):
                out[row, self._items.index(item)] = len(order) - position
        return out


def test_tune_on_valid_picks_the_best_recorded_grid_point() -> None:
    items = [str(i) for i in range(1, 9)]
    targets = {"a": "3", "b": "7"}
    valid = _task("valid", ["a", "b"], [[], []], [["3"], ["7"]])
    split = _split(items, _frame([("a", "1"), ("b", "2")]), valid=valid)
    grid = [{"rank": 3}, {"rank": 1, "tag": "first"}, {"rank": 2}, {"rank": 1, "tag": "second"}]
    best, scorer, rows = tune_on_valid(lambda p: _PlantedScorer(p, items, targets), grid, split)
    assert best == {"rank": 1, "tag": "first"} and scorer.params == best  # first of equal bests
    assert [r["params"] for r in rows] == grid
    expected = [1 / math.log2(4), 1.0, 1 / math.log2(3), 1.0]
    assert [r["valid/ndcg@10"] for r in rows] == pytest.approx(expected)
    assert all(r["valid/hr@10"] == 1.0 and r["fit_seconds"] >= 0 for r in rows)


def test_tune_on_valid_rows_match_independent_evaluation_of_ease() -> None:
    split0, users, histories = _clustered_split()
    valid = _task(
        "valid", list(users[:6]), [list(h[:3]) for h in histories[:6]], [[h[3]] for h in histories[:6]]
    )
    split = _split(ITEMS_13, split0.train, valid=valid)
    grid = EASEScorer.default_grid()
    best, scorer, rows = tune_on_valid(lambda p: EASEScorer(split, **p), grid, split, metric="hr@50")
    values = [evaluate(EASEScorer(split, **p), valid, split.item_ids)["hr@50"] for p in grid]
    assert [r["valid/hr@50"] for r in rows] == pytest.approx(values)
    assert best == grid[int(np.argmax(values))] and scorer.params == best


def test_default_grids_are_the_documented_ones() -> None:
    assert [p["l2"] for p in EASEScorer.default_grid()] == [50, 100, 200, 500, 1000, 2000]
    assert [p["k_neighbors"] for p in ItemKNNScorer.default_grid()] == [20, 50, 100, 200]
    als = ALSScorer.default_grid()
    assert {(p["factors"], p["regularization"], p["iterations"]) for p in als} == {
        (f, r, 15) for f in (32, 64, 128) for r in (0.01, 0.1)
    }
    bpr = BPRScorer.default_grid()
    assert {(p["factors"], p["learning_rate"], p["iterations"]) for p in bpr} == {
        (f, lr, 100) for f in (32, 64, 128) for lr in (0.01, 0.05)
    }


# ---------------------------------------------------------------- errors


def test_errors_name_the_bad_argument() -> None:
    split = _split(["a", "b", "c"], KNN_FRAME)
    with pytest.raises(ConfigError, match=r"fit_on='test' is not one of \('train', 'train_v"):
        EASEScorer(split, fit_on="test")
    with pytest.raises(ConfigError, match=r"l2=0 must be > 0"):
        EASEScorer(split, l2=0)
    with pytest.raises(ConfigError, match=r"k_neighbors=0 must be an integer >= 1"):
        ItemKNNScorer(split, k_neighbors=0)
    with pytest.raises(ConfigError, match=r"k_neighbors=2.5 must be an integer >= 1"):
        ItemKNNScorer(split, k_neighbors=2.5)
    with pytest.raises(ConfigError, match=r"shrink=-1 must be >= 0"):
        ItemKNNScorer(split, shrink=-1)
    with pytest.raises(ConfigError, match=r"grid is empty"):
        tune_on_valid(lambda p: EASEScorer(split, **p), [], split)
    with pytest.raises(ConfigError, match=r"metric='ndcg@20' must be '<name>@<k>' with k in"):
        tune_on_valid(lambda p: EASEScorer(split, **p), [{"l2": 1.0}], split, metric="ndcg@20")
    with pytest.raises(ConfigError, match=r"metric='map@10' is not among evaluate's results"):
        tune_on_valid(lambda p: EASEScorer(split, **p), [{"l2": 1.0}], split, metric="map@10")


def test_data_errors_name_the_bad_ids() -> None:
    split = _split(["a", "b", "c"], KNN_FRAME)
    scorer = EASEScorer(split, l2=1.0)
    with pytest.raises(DataError, match=r"histories holds item ids not in .*, e.g. \['zz'\]"):
        scorer.score(np.array(["u0"]), [np.array(["a", "zz"])])
    with pytest.raises(DataError, match=r"score got 2 user_ids but 1 histories"):
        scorer.score(np.array(["u0", "u1"]), [np.array(["a"])])
    with pytest.raises(DataError, match=r"split.train holds item ids not in split.item_ids"):
        EASEScorer(_split(["a", "b"], KNN_FRAME))
    empty = _split(["a"], KNN_FRAME.iloc[:0], train_valid=KNN_FRAME)
    with pytest.raises(DataError, match=r"split.train has 0 rows and columns"):
        ItemKNNScorer(empty)
