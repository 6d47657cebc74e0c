"""Which history items a two-tower model's recommendation rests on (numbers only).

For a user, the window of history the query tower reads (the last ``history_length`` items,
as ``Catalog.pad_histories`` cuts it) and a recommended item:

- with the attention history encoder, each item's weight is the query's attention on it
  (``QueryTower.history_weights``: the last block's attention of the last real position,
  averaged over heads); an item present twice gets the sum of its positions' weights;
- with any other query tower (mean pooling, GRU, LSTM...), each item's weight is the cosine
  similarity between its candidate embedding and the recommended item's.

Example:
    >>> items, weights, source = history_contributions(model, catalog, "1", history, "50")
    >>> source, items[:2], weights[:2]  # doctest: +SKIP
    ('attention', array([172, 180]), array([0.31, 0.22]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.errors import DataError
from tfrec_llm.models.retrieval import TwoTowerModel

ATTENTION = "attention"
SIMILARITY = "similarity"


def uses_attention(model: TwoTowerModel) -> bool:
    """Whether the query tower's history encoder is the attention encoder."""
    encoder = model.query_tower.encoder
    return bool(model.query_tower.use_history and encoder is not None and hasattr(encoder, "num_heads"))


def history_window(model: TwoTowerModel, catalog: Catalog, history: Sequence[str] | np.ndarray) -> np.ndarray:
    """``[history_length]`` catalog indices of the items the query reads, -1 padded on the left."""
    return catalog.pad_histories([np.asarray(history, dtype=object)], model.history_length)[0]


def attention_weights(model: TwoTowerModel, catalog: Catalog, user: str, window: np.ndarray) -> np.ndarray:
    """``[history_length]`` the query's weight of each window position (0 at padding)."""
    users = catalog.user_index(np.asarray([user], dtype=object)).astype(np.int32)
    padded = tf.constant(window[np.newaxis].astype(np.int32))
    embedded = model.embed_items(padded)
    weights = model.query_tower.history_weights(
        {"user": tf.constant(users), "history": embedded, "history_mask": padded >= 0}
    )
    return np.asarray(weights.numpy()[0], dtype=np.float64)


def cosine_to_item(candidates: np.ndarray, items: np.ndarray, item: int) -> np.ndarray:
    """Cosine similarity of the candidate embeddings of ``items`` with that of ``item``."""
    rows = candidates[items].astype(np.float64)
    target = candidates[item].astype(np.float64)
    norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(target)
    return np.divide(rows @ target, norms, out=np.zeros(len(items)), where=norms > 0)


def history_contributions(
    model: TwoTowerModel,
    catalog: Catalog,
    user: str,
    history: Sequence[str] | np.ndarray,
    item: str,
    candidates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Each distinct item of the user's history window with its contribution, largest first.

    Args:
        model: The trained model.
        catalog: Its catalog.
        user: The user id (unknown ids use the unknown-user row).
        history: The user's chronological item ids (the model reads the last
            ``history_length`` of those in the catalog).
        item: The recommended item id.
        candidates: ``model.all_candidate_embeddings()``, when already computed (similarity only).

    Returns:
        (catalog indices, weights, source): distinct window items sorted by weight (ties: the
        more recent first), and ``"attention"`` or ``"similarity"``.

    Raises:
        DataError: If ``item`` is not in the catalog.
    """
    (target,) = catalog.item_index(np.asarray([item], dtype=object))
    if target < 0:
        raise DataError(f"item {item!r} is not in the catalog ({catalog.num_items} items).")
    window = history_window(model, catalog, history)
    real = np.flatnonzero(window >= 0)
    if real.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, np.zeros(0), ATTENTION if uses_attention(model) else SIMILARITY
    if uses_attention(model):
        source = ATTENTION
        per_position = attention_weights(model, catalog, user, window)[real]
    else:
        source = SIMILARITY
        if candidates is None:
            candidates = model.all_candidate_embeddings()
        per_position = cosine_to_item(candidates, window[real], int(target))
    items = window[real].astype(np.int64)
    # Distinct items, the most recent position first; attention weights add up over repeats.
    distinct: dict[int, float] = {}
    for index, weight in zip(items[::-1].tolist(), per_position[::-1].tolist()):
        distinct[index] = distinct.get(index, 0.0) + weight if source == ATTENTION else weight
    ids = np.fromiter(distinct, np.int64, len(distinct))
    weights = np.fromiter(distinct.values(), np.float64, len(distinct))
    order = np.argsort(-weights, kind="stable")
    return ids[order], weights[order], source
