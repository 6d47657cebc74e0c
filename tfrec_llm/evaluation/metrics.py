"""Ranking metrics in plain numpy: target ranks, Recall@K, HR@K and NDCG@K.

The math follows docs/evaluation.md. A target's rank is 1 + the number of candidates that beat it,
where a candidate beats a target when it is not excluded and has a greater score, or an equal
score and a lower tie priority. Ranks are computed by counting, never by sorting a whole row,
so the cost is ``O(n_targets * n_candidates)`` with small vectorised chunks.

Ranks are returned as a padded ``int64`` array ``[n_users, max_targets]``: each row holds the
ranks of that user's targets in increasing column order, followed by ``-1`` padding. Every
metric below reads that array, ignores ``-1`` entries, and averages over users with at least
one target.

Example:
    >>> scores = np.array([[0.9, 0.1, 0.5]])
    >>> ranks = rank_targets(scores, scores < 0.2, np.zeros_like(scores, bool), np.arange(3))
    >>> ranks.tolist()
    [[3]]
    >>> ndcg_at_k(ranks, k=10)  # 1 / log2(3 + 1)
    0.5
"""

from __future__ import annotations

import numpy as np

from tfrec_llm.errors import DataError

PADDING = -1
"""Value that fills a rank row past the user's last target."""

_CHUNK_ELEMENTS = 1 << 18
"""Upper bound on ``targets x candidates`` compared at once; small chunks stay in cache."""


def rank_targets(
    scores: np.ndarray,
    target_mask: np.ndarray,
    exclude_mask: np.ndarray,
    priority: np.ndarray,
) -> np.ndarray:
    """Returns the 1-based rank of every target among the non-excluded candidates.

    A candidate ``j`` beats target ``t`` of the same user when ``j`` is not excluded and
    ``scores[j] > scores[t]``, or ``scores[j] == scores[t]`` and ``priority[j] < priority[t]``.
    ``rank(t) = 1 + #beaters``. Excluded candidates never occupy a rank; other targets do.
    A column that is both a target and excluded is ranked as a target (the target wins), so a
    re-consumed item in the history can still be hit.

    Args:
        scores: ``[n_users, n_cand]`` float scores, larger is better. ``-inf``/``+inf`` are
            allowed, NaN is not.
        target_mask: ``[n_users, n_cand]`` bool, True at each target.
        exclude_mask: ``[n_users, n_cand]`` bool, True at each candidate removed from the
            ranking.
        priority: ``[n_cand]`` distinct integers; among equal scores the lower priority ranks
            first.

    Returns:
        ``[n_users, max_targets]`` int64 ranks (1-based), row ``u`` listing the ranks of user
        ``u``'s targets in increasing column order, padded with ``-1``. ``max_targets`` is the
        largest number of targets of any user (0 when there are none).

    Raises:
        DataError: If the shapes disagree, ``priority`` has repeated values, or ``scores``
            holds NaN.
    """
    scores = np.asarray(scores)
    target_mask = np.asarray(target_mask, dtype=bool)
    exclude_mask = np.asarray(exclude_mask, dtype=bool)
    priority = np.asarray(priority)
    if scores.ndim != 2:
        raise DataError(
            f"scores must be 2-D [n_users, n_cand], got shape {scores.shape}; "
            "pass one row of candidate scores per user."
        )
    if target_mask.shape != scores.shape or exclude_mask.shape != scores.shape:
        raise DataError(
            f"target_mask {target_mask.shape} and exclude_mask {exclude_mask.shape} must have "
            f"the shape of scores {scores.shape}."
        )
    n_users, n_cand = scores.shape
    if priority.shape != (n_cand,):
        raise DataError(
            f"priority must have shape ({n_cand},) (one entry per candidate column), got {priority.shape}."
        )
    if np.unique(priority).size != n_cand:
        raise DataError(
            "priority must hold distinct values (a permutation), so that equal scores have "
            "one order; got repeated values."
        )
    if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
        row = int(np.nonzero(np.isnan(scores).any(axis=1))[0][0])
        raise DataError(
            f"scores hold NaN (first in row {row}); NaN cannot be ranked. Fix the scorer or "
            "replace NaN by -inf before ranking."
        )

    n_targets = np.count_nonzero(target_mask, axis=1)
    width = int(n_targets.max()) if n_users else 0
    ranks = np.full((n_users, width), PADDING, dtype=np.int64)
    rows, cols = np.nonzero(target_mask)  # row-major: by user, then by column
    if rows.size == 0:
        return ranks

    ranked = ~exclude_mask | target_mask  # targets are always in the ranking
    beaters = np.empty(rows.size, dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_cand, 1))
    for start in range(0, rows.size, chunk):
        r = rows[start : start + chunk]
        c = cols[start : start + chunk]
        row_scores = scores[r]  # [m, n_cand]
        own = scores[r, c][:, None]  # [m, 1]
        beats = np.greater(row_scores, own)
        tied_and_first = np.equal(row_scores, own)
        np.logical_and(tied_and_first, priority[None, :] < priority[c][:, None], out=tied_and_first)
        np.logical_or(beats, tied_and_first, out=beats)
        np.logical_and(beats, ranked[r], out=beats)
        beaters[start : start + chunk] = np.count_nonzero(beats, axis=1)

    first_of_row = np.cumsum(n_targets) - n_targets
    position = np.arange(rows.size) - first_of_row[rows]
    ranks[rows, position] = beaters + 1
    return ranks


def user_recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user Recall@K: targets ranked in the top ``k`` / number of targets.

    Args:
        ranks: ``[n_users, max_targets]`` padded ranks from `rank_targets`.
        k: Cut-off, a positive integer.

    Returns:
        ``[n_users]`` float64, NaN for users without targets.

    Raises:
        DataError: If ``ranks`` is not 2-D or ``k`` is not a positive integer.
    """
    hits, n_targets = _counts(ranks, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_targets > 0, hits / np.maximum(n_targets, 1), np.nan)


def user_hit_rate_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user HR@K: 1.0 if any target is ranked in the top ``k``, else 0.0.

    With one target per user this equals Recall@K.

    Args:
        ranks: ``[n_users, max_targets]`` padded ranks from `rank_targets`.
        k: Cut-off, a positive integer.

    Returns:
        ``[n_users]`` float64, NaN for users without targets.

    Raises:
        DataError: If ``ranks`` is not 2-D or ``k`` is not a positive integer.
    """
    hits, n_targets = _counts(ranks, k)
    return np.where(n_targets > 0, (hits > 0).astype(np.float64), np.nan)


def user_ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@K with binary relevance.

    ``DCG = sum over targets with rank <= k of 1 / log2(rank + 1)``;
    ``IDCG = sum_{i=1}^{min(n_targets, k)} 1 / log2(i + 1)``.

    Args:
        ranks: ``[n_users, max_targets]`` padded ranks from `rank_targets`.
        k: Cut-off, a positive integer.

    Returns:
        ``[n_users]`` float64 in ``[0, 1]``, NaN for users without targets.

    Raises:
        DataError: If ``ranks`` is not 2-D or ``k`` is not a positive integer.
    """
    _, n_targets = _counts(ranks, k)
    ranks = np.asarray(ranks)
    in_top = (ranks > 0) & (ranks <= k)
    gains = np.zeros(ranks.shape, dtype=np.float64)
    gains[in_top] = 1.0 / np.log2(ranks[in_top] + 1.0)
    dcg = gains.sum(axis=1)
    ideal_cumsum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal_cumsum[np.minimum(n_targets, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_targets > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Recall@K averaged over users with at least one target (see `user_recall_at_k`).

    Raises:
        DataError: If no user has a target, or as `user_recall_at_k`.
    """
    return _mean_over_users(user_recall_at_k(ranks, k), "recall_at_k")


def hit_rate_at_k(ranks: np.ndarray, k: int) -> float:
    """HR@K averaged over users with at least one target (see `user_hit_rate_at_k`).

    Raises:
        DataError: If no user has a target, or as `user_hit_rate_at_k`.
    """
    return _mean_over_users(user_hit_rate_at_k(ranks, k), "hit_rate_at_k")


def ndcg_at_k(ranks: np.ndarray, k: int) -> float:
    """NDCG@K averaged over users with at least one target (see `user_ndcg_at_k`).

    Raises:
        DataError: If no user has a target, or as `user_ndcg_at_k`.
    """
    return _mean_over_users(user_ndcg_at_k(ranks, k), "ndcg_at_k")


def _counts(ranks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Validates inputs; returns (hits in the top k, number of targets) per user."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2:
        raise DataError(
            f"ranks must be 2-D [n_users, max_targets] as returned by rank_targets, got shape {ranks.shape}."
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}.")
    valid = ranks > 0
    hits = np.count_nonzero(valid & (ranks <= k), axis=1)
    return hits, np.count_nonzero(valid, axis=1)


def _mean_over_users(values: np.ndarray, name: str) -> float:
    """Mean over the non-NaN entries (users with targets)."""
    present = ~np.isnan(values)
    if not present.any():
        raise DataError(
            f"{name}: no user has a target (every rank row is padding), so the average is "
            "undefined; check that the evaluation task has targets."
        )
    return float(values[present].mean())
