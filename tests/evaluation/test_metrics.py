"""Tests for tfrec_llm.evaluation.metrics: hand-computed ranks and metrics, and a reference."""

import math

import numpy as np
import pytest

from tfrec_llm.errors import DataError
from tfrec_llm.evaluation import metrics
from tfrec_llm.evaluation.metrics import (
    hit_rate_at_k,
    ndcg_at_k,
    rank_targets,
    recall_at_k,
    user_ndcg_at_k,
    user_recall_at_k,
)


def _masks(n_cand, targets, excluded=()):
    """One-user target and exclude masks from column lists."""
    target = np.zeros((1, n_cand), bool)
    target[0, list(targets)] = True
    exclude = np.zeros((1, n_cand), bool)
    exclude[0, list(excluded)] = True
    return target, exclude


def _reference_ranks(scores, target_mask, exclude_mask, priority):
    """Independent pure-Python ranks: sort the ranked columns by (-score, prio) explicitly."""
    out = []
    for u in range(len(scores)):
        n = len(scores[u])
        ranked = [j for j in range(n) if not exclude_mask[u][j] or target_mask[u][j]]
        order = sorted(ranked, key=lambda j: (-float(scores[u][j]), int(priority[j])))
        position = {j: i + 1 for i, j in enumerate(order)}
        out.append([position[j] for j in range(n) if target_mask[u][j]])
    return out


def _reference_metrics(rank_lists, k):
    """Pure-Python recall, hr, ndcg averaged over users with at least one target."""
    recall, hr, ndcg = [], [], []
    for ranks in rank_lists:
        if not ranks:
            continue
        hits = [r for r in ranks if r <= k]
        recall.append(len(hits) / len(ranks))
        hr.append(1.0 if hits else 0.0)
        dcg = sum(1.0 / math.log2(r + 1) for r in hits)
        idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(ranks), k) + 1))
        ndcg.append(dcg / idcg)
    return (sum(recall) / len(recall), sum(hr) / len(hr), sum(ndcg) / len(ndcg))


def test_single_target_at_rank_one():
    # scores 0.9 > 0.5 > 0.1, target = column 0 -> nobody beats it -> rank 1.
    scores = np.array([[0.9, 0.5, 0.1]])
    target, exclude = _masks(3, [0])
    ranks = rank_targets(scores, target, exclude, np.arange(3))
    assert ranks.tolist() == [[1]]
    # NDCG = (1 / log2(1 + 1)) / (1 / log2(2)) = 1.
    assert ndcg_at_k(ranks, 1) == pytest.approx(1.0)
    assert recall_at_k(ranks, 1) == 1.0
    assert hit_rate_at_k(ranks, 1) == 1.0


def test_single_target_at_rank_three_and_past_k():
    # target = column 2 (score 0.1), beaten by 0.9 and 0.5 -> rank 3.
    scores = np.array([[0.9, 0.5, 0.1]])
    target, exclude = _masks(3, [2])
    ranks = rank_targets(scores, target, exclude, np.arange(3))
    assert ranks.tolist() == [[3]]
    # k = 10: DCG = 1 / log2(3 + 1) = 1 / 2 = 0.5; IDCG = 1 / log2(2) = 1 -> 0.5.
    assert ndcg_at_k(ranks, 10) == pytest.approx(0.5)
    assert recall_at_k(ranks, 3) == 1.0
    assert hit_rate_at_k(ranks, 3) == 1.0
    # k = 2: rank 3 is past k -> every metric is 0.
    assert ndcg_at_k(ranks, 2) == 0.0
    assert recall_at_k(ranks, 2) == 0.0
    assert hit_rate_at_k(ranks, 2) == 0.0


def test_two_targets_idcg_over_min_targets_and_k():
    # scores descend with the column, targets = columns 1 and 3 -> ranks 2 and 4.
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    target, exclude = _masks(5, [1, 3])
    ranks = rank_targets(scores, target, exclude, np.arange(5))
    assert ranks.tolist() == [[2, 4]]
    # k = 10: DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606;
    #         IDCG = 1/log2(2) + 1/log2(3) = 1.630930 -> NDCG = 0.650920.
    assert ndcg_at_k(ranks, 10) == pytest.approx(1.061606 / 1.630930, abs=1e-6)
    # k = 3: DCG = 1/log2(3) = 0.630930; IDCG over min(2, 3) = 2 terms = 1.630930 -> 0.386853.
    assert ndcg_at_k(ranks, 3) == pytest.approx(0.630930 / 1.630930, abs=1e-6)
    # Recall@3 = 1 hit / 2 targets; HR@3 = 1.
    assert recall_at_k(ranks, 3) == 0.5
    assert hit_rate_at_k(ranks, 3) == 1.0
    # k = 1: no target in the top 1.
    assert ndcg_at_k(ranks, 1) == 0.0


def test_idcg_truncated_at_k_gives_one_when_top_k_is_all_targets():
    # targets at columns 0 and 2 -> ranks 1 and 3. k = 1: DCG = 1/log2(2) = 1; IDCG over
    # min(|T| = 2, k = 1) = 1 term = 1 -> NDCG = 1 (IDCG over |T| would give 1/1.63 = 0.61).
    scores = np.array([[0.9, 0.8, 0.7]])
    target, exclude = _masks(3, [0, 2])
    ranks = rank_targets(scores, target, exclude, np.arange(3))
    assert ranks.tolist() == [[1, 3]]
    assert ndcg_at_k(ranks, 1) == pytest.approx(1.0)
    # Recall@1 = 1 / 2 (the denominator is |T|, not min(|T|, k)).
    assert recall_at_k(ranks, 1) == 0.5


def test_excluded_item_with_higher_score_does_not_push_target_down():
    # column 0 scores 0.9 but is excluded; target column 1 (0.5) -> rank 1, not 2.
    scores = np.array([[0.9, 0.5, 0.1]])
    target, exclude = _masks(3, [1], excluded=[0])
    assert rank_targets(scores, target, exclude, np.arange(3)).tolist() == [[1]]
    # Without the exclusion it is rank 2.
    target, exclude = _masks(3, [1])
    assert rank_targets(scores, target, exclude, np.arange(3)).tolist() == [[2]]


def test_target_that_is_also_excluded_is_still_ranked():
    # column 1 is both a target and excluded: the target wins; column 0 beats it -> rank 2.
    scores = np.array([[0.9, 0.5, 0.1]])
    target, exclude = _masks(3, [1], excluded=[0, 1])
    assert rank_targets(scores, target, exclude, np.arange(3)).tolist() == [[1]]
    target, exclude = _masks(3, [1], excluded=[1])
    assert rank_targets(scores, target, exclude, np.arange(3)).tolist() == [[2]]


def test_ties_are_broken_by_priority_not_by_column():
    # all scores equal; priority = [2, 0, 3, 1]: order by priority is columns 1, 3, 0, 2.
    scores = np.zeros((1, 4))
    priority = np.array([2, 0, 3, 1])
    for column, expected in [(0, 3), (1, 1), (2, 4), (3, 2)]:
        target, exclude = _masks(4, [column])
        assert rank_targets(scores, target, exclude, priority).tolist() == [[expected]]
    # A strictly higher score still wins over a lower priority: column 2 (prio 3) scores 1.
    scores = np.array([[0.0, 0.0, 1.0, 0.0]])
    target, exclude = _masks(4, [2])
    assert rank_targets(scores, target, exclude, priority).tolist() == [[1]]


def test_other_targets_occupy_ranks():
    # two targets with the two highest scores -> ranks 1 and 2 (not both 1).
    scores = np.array([[0.9, 0.8, 0.1]])
    target, exclude = _masks(3, [0, 1])
    assert rank_targets(scores, target, exclude, np.arange(3)).tolist() == [[1, 2]]


def test_infinite_scores_are_ranked():
    # -inf ranks last, +inf first. priority = [3, 1, 2, 0]: column 3 (-inf, prio 0) would win
    # the -inf tie against the target column 0 (-inf, prio 3), but it is excluded.
    scores = np.array([[-np.inf, 0.0, np.inf, -np.inf]])
    priority = np.array([3, 1, 2, 0])
    target, exclude = _masks(4, [0], excluded=[3])
    # column 0 is beaten by columns 1 (0.0) and 2 (+inf) only -> rank 3.
    assert rank_targets(scores, target, exclude, priority).tolist() == [[3]]
    target, exclude = _masks(4, [0])
    assert rank_targets(scores, target, exclude, priority).tolist() == [[4]]


def test_ragged_output_is_padded_and_users_without_targets_are_skipped():
    scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.5, 0.9], [0.3, 0.2, 0.1]])
    target = np.array([[True, False, True], [True, False, False], [False, False, False]])
    exclude = np.zeros_like(target)
    ranks = rank_targets(scores, target, exclude, np.arange(3))
    # user 0: ranks 1 and 3; user 1: column 0 has the lowest score -> 3; user 2: no target.
    assert ranks.tolist() == [[1, 3], [3, -1], [-1, -1]]
    # Recall@1: user 0 -> 1/2, user 1 -> 0; mean over the 2 users with targets = 0.25.
    assert recall_at_k(ranks, 1) == pytest.approx(0.25)
    per_user = user_recall_at_k(ranks, 1)
    assert per_user[:2].tolist() == [0.5, 0.0] and np.isnan(per_user[2])
    # NDCG@3: user 0: (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.630930 = 0.919721;
    #         user 1: (1/log2(4)) / 1 = 0.5 -> mean 0.709860.
    assert ndcg_at_k(ranks, 3) == pytest.approx((1.5 / 1.630930 + 0.5) / 2, abs=1e-6)
    assert np.isnan(user_ndcg_at_k(ranks, 3)[2])


def test_no_targets_at_all_gives_an_empty_rank_array():
    scores = np.zeros((2, 3))
    none = np.zeros((2, 3), bool)
    ranks = rank_targets(scores, none, none, np.arange(3))
    assert ranks.shape == (2, 0)
    with pytest.raises(DataError, match="no user has a target"):
        ndcg_at_k(ranks, 10)


@pytest.mark.parametrize("chunk_elements", [1, 7, 1 << 18])
def test_random_matrices_match_pure_python_reference(monkeypatch, chunk_elements):
    # Small chunks force several chunk iterations (1 target per chunk at chunk_elements=1).
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", chunk_elements)
    rng = np.random.default_rng(7)
    for trial in range(5):
        n_users, n_cand = 50, 40
        # Few distinct values -> many ties, so the priority matters.
        scores = rng.integers(0, 6 if trial % 2 else 1000, size=(n_users, n_cand)) / 7.0
        target_mask = rng.random((n_users, n_cand)) < 0.08
        exclude_mask = rng.random((n_users, n_cand)) < 0.2
        priority = rng.permutation(n_cand)
        ranks = rank_targets(scores, target_mask, exclude_mask, priority)
        expected = _reference_ranks(scores, target_mask, exclude_mask, priority)
        assert [[r for r in row if r > 0] for row in ranks.tolist()] == expected
        for k in (1, 5, 10, 50):
            recall, hr, ndcg = _reference_metrics(expected, k)
            assert recall_at_k(ranks, k) == pytest.approx(recall, abs=1e-12)
            assert hit_rate_at_k(ranks, k) == pytest.approx(hr, abs=1e-12)
            assert ndcg_at_k(ranks, k) == pytest.approx(ndcg, abs=1e-12)


def test_nan_scores_are_rejected():
    scores = np.array([[0.1, np.nan, 0.3]])
    target, exclude = _masks(3, [0])
    with pytest.raises(DataError, match=r"scores hold NaN \(first in row 0\)"):
        rank_targets(scores, target, exclude, np.arange(3))


def test_shape_errors_name_the_shapes():
    scores = np.zeros((2, 3))
    mask = np.zeros((2, 3), bool)
    with pytest.raises(DataError, match=r"scores must be 2-D"):
        rank_targets(np.zeros(3), mask[0], mask[0], np.arange(3))
    with pytest.raises(DataError, match=r"target_mask \(2, 2\) and exclude_mask \(2, 3\)"):
        rank_targets(scores, np.zeros((2, 2), bool), mask, np.arange(3))
    with pytest.raises(DataError, match=r"priority must have shape \(3,\)"):
        rank_targets(scores, mask, mask, np.arange(4))
    with pytest.raises(DataError, match="priority must hold distinct values"):
        rank_targets(scores, mask, mask, np.array([0, 1, 1]))


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_rejected(k):
    with pytest.raises(DataError, match="k must be a positive integer"):
        recall_at_k(np.array([[1]]), k)


def test_ranks_must_be_two_dimensional():
    with pytest.raises(DataError, match="ranks must be 2-D"):
        ndcg_at_k(np.array([1, 2]), 10)
