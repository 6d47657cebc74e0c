"""tf.data input pipelines for the retrieval model.

``training_examples`` turns a chronologically sorted interaction frame into one example per
interaction: the user, the item, and the up to ``history_length`` items the user interacted
with *before* it (a causal history, so training matches how the model is queried).

Example:
    >>> examples = training_examples(split.train, catalog, history_length=50)
    >>> ds = make_dataset(examples, batch_size=512, shuffle_buffer=100_000, seed=42)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.schema import ITEM_ID, USER_ID
from tfrec_llm.errors import DataError


def causal_histories(users: np.ndarray, items: np.ndarray, history_length: int) -> np.ndarray:
    """[n, history_length] previous items of the same user, most recent last, -1 padded.

    Args:
        users: [n] user indices, rows grouped by user in chronological order.
        items: [n] item indices in the same order.
        history_length: Window size.
    """
    n = len(users)
    out = np.full((n, history_length), -1, dtype=np.int32)
    for lag in range(1, min(history_length, n) + 1):
        same_user = np.zeros(n, dtype=bool)
        same_user[lag:] = users[lag:] == users[:-lag]
        rows = np.nonzero(same_user)[0]
        out[rows, history_length - lag] = items[rows - lag]
    return out


def training_examples(
    interactions: pd.DataFrame, catalog: Catalog, history_length: int
) -> dict[str, np.ndarray]:
    """Builds the integer training arrays from interactions sorted by (user, time, tie_key).

    Args:
        interactions: Canonical interactions, grouped by user in chronological order
            (``Split.train`` / ``Split.train_valid`` are).
        catalog: Integer tables (``build_catalog``).
        history_length: Items of history per example.

    Returns:
        Dict of numpy arrays: ``user`` [n], ``item`` [n], ``history`` [n, L], ``item_probability`` [n].

    Raises:
        DataError: an item id is not in the catalog.
    """
    users, items = _indices(interactions, catalog)
    probability = _item_probability(items, catalog.num_items)
    return {
        "user": users.astype(np.int32),
        "item": items.astype(np.int32),
        "history": causal_histories(users, items.astype(np.int32), history_length),
        "item_probability": probability[items],
    }


def next_item_windows(
    interactions: pd.DataFrame, catalog: Catalog, history_length: int
) -> dict[str, np.ndarray]:
    """Cuts each user's sequence, from its end, into windows of ``history_length + 1`` items.

    SASRec's training examples: in a window, the items at positions 0..L-1 are the inputs and
    the items at 1..L the targets, so every position is trained in one pass. Windows do not
    overlap; a user's oldest window is the shorter one, LEFT-padded with -1 like every
    history (``Catalog.pad_histories``). A user with one interaction gives a window with no
    target (it is skipped).

    Args:
        interactions: Canonical interactions, grouped by user in chronological order.
        catalog: Integer tables (``build_catalog``).
        history_length: Inputs per window (the query tower's history length).

    Returns:
        ``user`` [n] int32, ``sequence`` [n, history_length + 1] int32 catalog indices,
        ``sequence_probability`` [n, history_length + 1] float32, each item's share of the
        interactions (0 at padding; for the logQ correction of the in-batch loss).

    Raises:
        DataError: an item id is not in the catalog.
    """
    users, items = _indices(interactions, catalog)
    width = history_length + 1
    if not len(users):
        raise DataError("next_item_windows: no interactions to cut into training windows")
    # Position of each interaction counted from its user's last one (0 = most recent).
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(users)])
    from_end = np.repeat(starts + lengths, lengths) - 1 - np.arange(len(users))
    window_key = np.stack([np.repeat(np.arange(len(starts)), lengths), -(from_end // width)], axis=1)
    keys, row = np.unique(window_key, axis=0, return_inverse=True)
    row = row.reshape(-1)
    sequence = np.full((len(keys), width), -1, np.int32)
    sequence[row, width - 1 - from_end % width] = items
    keep = (sequence >= 0).sum(axis=1) >= 2
    probability = _item_probability(items, catalog.num_items)
    sequence_probability = np.where(sequence >= 0, probability[np.maximum(sequence, 0)], 0.0)
    return {
        "user": users[starts][keys[:, 0]][keep].astype(np.int32),
        "sequence": sequence[keep],
        "sequence_probability": sequence_probability[keep].astype(np.float32),
    }


def _indices(interactions: pd.DataFrame, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """[n] user and item catalog indices of the interactions; DataError for an unknown item."""
    users = catalog.user_index(interactions[USER_ID].to_numpy())
    items = catalog.item_index(interactions[ITEM_ID].to_numpy())
    if (items < 0).any():
        bad = interactions[ITEM_ID].to_numpy()[items < 0][:5]
        raise DataError(f"training interactions reference item ids outside the catalog, e.g. {list(bad)}")
    return users, items.astype(np.int32)


def _item_probability(items: np.ndarray, num_items: int) -> np.ndarray:
    """[num_items] float32: each item's share of ``items``."""
    counts = np.bincount(items, minlength=num_items).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)


def make_dataset(
    examples: dict[str, np.ndarray],
    batch_size: int,
    shuffle_buffer: int = 100_000,
    seed: int | None = None,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """Wraps example arrays as a shuffled, batched, prefetched ``tf.data.Dataset``.

    Each epoch reshuffles (deterministically for a given seed). The last partial batch is
    dropped when shuffling, so every step has ``batch_size`` in-batch negatives, unless there
    are fewer examples than ``batch_size`` (then the one batch holds them all).

    Raises:
        DataError: If there are no examples.
    """
    n = len(next(iter(examples.values())))
    if n == 0:
        raise DataError(
            "no training examples in TRAIN (with model.objective=next_item a user needs at "
            "least 2 TRAIN interactions). Add interactions to the log."
        )
    ds = tf.data.Dataset.from_tensor_slices(examples)
    if shuffle:
        ds = ds.shuffle(min(shuffle_buffer, n), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=shuffle and n >= batch_size).prefetch(tf.data.AUTOTUNE)
