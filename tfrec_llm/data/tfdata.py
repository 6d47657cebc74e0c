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
    users = catalog.user_index(interactions[USER_ID].to_numpy())
    items = catalog.item_index(interactions[ITEM_ID].to_numpy())
    if (items < 0).any():
        bad = interactions[ITEM_ID].to_numpy()[items < 0][:5]
        raise DataError(f"training interactions reference item ids outside the catalog, e.g. {list(bad)}")
    counts = np.bincount(items, minlength=catalog.num_items).astype(np.float64)
    probability = (counts / counts.sum())[items].astype(np.float32)
    return {
        "user": users.astype(np.int32),
        "item": items.astype(np.int32),
        "history": causal_histories(users, items.astype(np.int32), history_length),
        "item_probability": probability,
    }


def make_dataset(
    examples: dict[str, np.ndarray],
    batch_size: int,
    shuffle_buffer: int = 100_000,
    seed: int | None = None,
    shuffle: bool = True,
) -> tf.data.Dataset:
    """Wraps example arrays as a shuffled, batched, prefetched ``tf.data.Dataset``.

    Each epoch reshuffles (deterministically for a given seed). The last partial batch is
    dropped when shuffling, so every step has ``batch_size`` in-batch negatives.
    """
    ds = tf.data.Dataset.from_tensor_slices(examples)
    if shuffle:
        ds = ds.shuffle(min(shuffle_buffer, len(examples["item"])), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=shuffle).prefetch(tf.data.AUTOTUNE)
