"""Knowledge transfer to new items: a new item borrows the collaborative signal of its text neighbours.

An item without training interactions has no learned id embedding and an all-zero column in
the EASE item-item table (`tfrec_llm.models.item_item`): nothing co-occurred with it. Its text
is known, though, and so are the texts of the warm items. `neighbour_weights` finds, for each
new item, the ``k`` warm items whose frozen text vectors (MiniLM by default) are nearest by
cosine, with weights ``max(cos, 0) ** power`` that sum to 1. `transfer_item_item` then fills
the new item's column of the table (how much each history item recommends it) and its row (how
much it recommends others, when a user has it in their history) with the weighted mean of its
neighbours' columns and rows, and keeps the diagonal at 0. The result is an ordinary dense table,
so the exported ranking model scores new items with the ops it already has.

Example:
    >>> text = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> rows, neighbours, weights = neighbour_weights(text, np.array([True, False, True]), 1, 1.0)
    >>> rows.tolist(), neighbours.tolist(), weights.tolist()
    ([1], [[0]], [[1.0]])
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tfrec_llm.errors import ConfigError

__all__ = ["neighbour_weights", "transfer_item_item"]


def neighbour_weights(
    text_vectors: np.ndarray, warm: np.ndarray, k: int, power: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` warm text neighbours of every item that is not warm, and their weights.

    Args:
        text_vectors: [num_items, dim] text vectors (catalog order); rows are L2-normalised here,
            an all-zero row (no text) has cosine 0 to everything.
        warm: [num_items] bool, True for items with training interactions.
        k: Neighbours per new item, >= 1 (at most the number of warm items are used).
        power: Weight exponent, >= 0: ``max(cos, 0) ** power`` (0 = a plain mean).

    Returns:
        (rows [n_new], neighbours [n_new, k'] warm item rows, weights [n_new, k'] summing to 1),
        ``k' = min(k, warm.sum())``. A new item whose neighbours all have cosine <= 0 weighs
        them equally.

    Raises:
        ConfigError: ``k`` < 1, ``power`` < 0, shapes that disagree, or no warm item at all.
    """
    vectors = np.asarray(text_vectors, np.float64)
    warm = np.asarray(warm, bool)
    if k < 1 or not np.isfinite(power) or power < 0:
        raise ConfigError(f"neighbour_weights: k={k}, power={power}; expected k >= 1 and power >= 0")
    if vectors.ndim != 2 or warm.shape != (len(vectors),):
        raise ConfigError(
            f"neighbour_weights: text_vectors {vectors.shape} and warm {warm.shape} must be "
            "[num_items, dim] and [num_items]"
        )
    rows, warm_rows = np.flatnonzero(~warm), np.flatnonzero(warm)
    if len(warm_rows) == 0:
        raise ConfigError("neighbour_weights: no item has training interactions, so none can lend its signal")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    cosine = unit[rows] @ unit[warm_rows].T  # [n_new, n_warm]
    k = min(int(k), len(warm_rows))
    # the k largest per row, in descending order; ties by warm row (a stable order)
    top = np.argsort(-cosine, axis=1, kind="stable")[:, :k]
    nearest = np.take_along_axis(cosine, top, axis=1)
    weights = np.maximum(nearest, 0.0) ** power if power else np.ones_like(nearest)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / k)
    return rows, warm_rows[top], weights


def transfer_item_item(
    table: np.ndarray, text_vectors: np.ndarray, warm: np.ndarray, k: int, power: float
) -> np.ndarray:
    """The item-item ``table`` with the rows and columns of new items taken from text neighbours.

    For a new item ``c`` with neighbours ``j`` and weights ``w``: column ``c`` becomes
    ``sum_j w_j table[:, j]`` and row ``c`` becomes ``sum_j w_j table[j, :]`` (read after the
    columns are filled), and ``table[c, c] = 0``. Warm rows and columns are unchanged, except
    at the new items' columns.

    Args:
        table: [num_items, num_items] item-item weights fitted on training interactions.
        text_vectors, warm, k, power: As in `neighbour_weights`.

    Returns:
        A new float32 table; ``table`` is not modified.
    """
    table = np.asarray(table)
    if table.shape != (len(warm), len(warm)):
        raise ConfigError(f"transfer_item_item: table {table.shape}, expected {(len(warm), len(warm))}")
    rows, neighbours, weights = neighbour_weights(text_vectors, warm, k, power)
    out = np.array(table, np.float64)
    if len(rows) == 0:
        return out.astype(np.float32)
    lend = sp.csr_matrix(  # [n_new, num_items]: new item n <- its neighbours
        (weights.ravel(), (np.repeat(np.arange(len(rows)), weights.shape[1]), neighbours.ravel())),
        shape=(len(rows), len(out)),
    )
    out[:, rows] = np.asarray((lend @ out.T).T)
    out[rows, :] = np.asarray(lend @ out)
    out[rows, rows] = 0.0
    return out.astype(np.float32)
