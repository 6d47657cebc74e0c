"""An item-item collaborative signal for the ranking stage: EASE weights and their scores.

EASE (Steck, 2019) is a closed-form item-item ridge regression with a zero diagonal:
``B = argmin ||X - XB||^2 + l2 ||B||^2`` s.t. ``diag(B) = 0``, solved as
``P = (X^T X + l2 I)^-1``, ``B_ij = -P_ij / P_jj``. The score of item ``c`` for a history
``h`` is ``sum_{i in h} B[i, c]``. It is a different kind of evidence than the two-tower's
(co-occurrence counts rather than a learned sequence embedding), which is why it helps a
ranker that re-ranks the two-tower's candidates (``ranking.item_item_l2``,
docs/two_stage.md). ``B`` is dense, [num_items, num_items] float32, so its size is bounded
(`MAX_ITEM_ITEM_ITEMS`).

Example:
    >>> x = np.array([[1, 1, 0], [0, 1, 1]], np.float32)  # users x items, binary
    >>> ease_weights(x, l2=1.0).shape
    (3, 3)
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tfrec_llm.errors import ConfigError

MAX_ITEM_ITEM_ITEMS = 20_000
"""Largest catalog for the dense item-item matrix (20k items: 1.6 GB of float32)."""


def check_item_item_size(num_items: int) -> None:
    """Raises when the dense [num_items, num_items] matrix would be too large.

    Raises:
        ConfigError: ``num_items`` is above `MAX_ITEM_ITEM_ITEMS`.
    """
    if num_items > MAX_ITEM_ITEM_ITEMS:
        gigabytes = 4.0 * num_items * num_items / 1e9
        raise ConfigError(
            f"ranking.item_item_l2 > 0 needs a dense [items, items] matrix; {num_items:,} items "
            f"would take {gigabytes:.1f} GB (the limit is {MAX_ITEM_ITEM_ITEMS:,} items). Set "
            "ranking.item_item_l2=0 for this catalog."
        )


def ease_weights(matrix: np.ndarray | sp.spmatrix, l2: float, dtype: type = np.float32) -> np.ndarray:
    """[num_items, num_items] EASE weights of a binary users x items ``matrix``.

    Args:
        matrix: Dense or scipy-sparse [num_users, num_items] interactions (1 = interacted).
        l2: Ridge strength lambda, > 0.
        dtype: Of the result (the solve is in float64).

    Raises:
        ConfigError: ``l2`` is not > 0, or the catalog is too large (`check_item_item_size`).
    """
    if not l2 > 0:
        raise ConfigError(f"l2={l2!r} must be > 0 (X^T X alone is singular); try 100 or 500.")
    check_item_item_size(int(matrix.shape[1]))
    gram = matrix.T @ matrix
    gram = np.asarray(gram.toarray() if sp.issparse(gram) else gram, dtype=np.float64)
    gram[np.diag_indices_from(gram)] += l2
    precision = np.linalg.inv(gram)
    weights = precision / -np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights.astype(dtype)


def interaction_matrix(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> sp.csr_matrix:
    """Binary [num_users, num_items] CSR matrix of (user, item) catalog-index pairs (repeats count once)."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    keep = (users >= 0) & (items >= 0)
    data = np.ones(int(keep.sum()), np.float32)
    matrix = sp.csr_matrix((data, (users[keep], items[keep])), shape=(num_users, num_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
