"""A synthetic interaction log: users x items x Zipf popularity x short item text, by seed.

The log is generated a chunk of whole users at a time, each chunk from its own seeded stream
(``SeedSequence([seed, chunk])``), so any size is produced in constant memory and the same
arguments always give the same log. Item ``i`` (catalog index ``i``, id ``"i<i>"``) is drawn
with probability proportional to ``1 / (i + 1) ** zipf_exponent``: item 0 is the most popular,
and ``count(0) / count(1)`` tends to ``2 ** zipf_exponent``. A user's number of interactions
is ``1 + Poisson(mean_length - 1)``; timestamps increase within a user.

Example:
    >>> for users, items, timestamps in synthetic_chunks(1_000_000, 100_000, seed=0):
    ...     writer.add(users, items)
    >>> write_synthetic_log("synthetic/", 1_000_000, 100_000, seed=0)   # Parquet shards + items.csv
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd

from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from tfrec_llm.data.tfrecord import _atomic_write
from tfrec_llm.errors import DataError

WORDS = (
    "red blue green dark light quiet loud small big old new fast slow warm cold bright deep "
    "river city night story garden machine ocean winter summer journey secret music kitchen "
    "forest signal mirror engine harbor planet"
).split()
"""The vocabulary of the synthetic item texts."""

START_TIME = 1_600_000_000
"""Timestamp (seconds) of every user's first interaction."""


def zipf_cdf(num_items: int, exponent: float) -> np.ndarray:
    """[num_items] float64 cumulative probabilities of ranks 0..num_items-1 (1 at the end)."""
    weights = 1.0 / np.arange(1, num_items + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def synthetic_chunks(
    num_interactions: int,
    num_items: int,
    seed: int = 0,
    mean_length: float = 20.0,
    zipf_exponent: float = 1.0,
    chunk_users: int = 20_000,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields ``(users, items, timestamps)`` chunks of whole users, grouped and chronological.

    Args:
        num_interactions: About how many interactions in all (users =
            ``ceil(num_interactions / mean_length)``; the total varies by a fraction of a percent).
        num_items: Catalog size.
        seed: Seed (same arguments, same log).
        mean_length: Mean interactions per user (>= 1).
        zipf_exponent: Popularity exponent (> 0).
        chunk_users: Users per chunk (memory is O(chunk_users * mean_length + num_items)).

    Yields:
        users [n] int64 user indices, items [n] int32 catalog indices, timestamps [n] int64.

    Raises:
        DataError: A size or parameter out of range.
    """
    if num_interactions < 1 or num_items < 1 or chunk_users < 1 or mean_length < 1 or zipf_exponent <= 0:
        raise DataError(
            f"synthetic log: num_interactions={num_interactions}, num_items={num_items}, "
            f"chunk_users={chunk_users} must be >= 1, mean_length={mean_length} >= 1 and "
            f"zipf_exponent={zipf_exponent} > 0"
        )
    cdf = zipf_cdf(num_items, zipf_exponent)
    num_users = math.ceil(num_interactions / mean_length)
    for chunk, first in enumerate(range(0, num_users, chunk_users)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, chunk]))
        count = min(chunk_users, num_users - first)
        lengths = 1 + rng.poisson(mean_length - 1, size=count)
        users = np.repeat(np.arange(first, first + count, dtype=np.int64), lengths)
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users)), side="right"), num_items - 1)
        gaps = rng.integers(1, 86_400, size=len(users))
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        offsets = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[starts] - gaps[starts], lengths)
        yield users, items.astype(np.int32), START_TIME + offsets


def item_texts(num_items: int, seed: int = 0, words: int = 4) -> list[str]:
    """Short deterministic texts, ``"<w1> <w2> ... (item <i>)"`` from `WORDS`."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    picks = rng.integers(0, len(WORDS), size=(num_items, words))
    return [" ".join(WORDS[w] for w in row) + f" (item {i})" for i, row in enumerate(picks)]


def write_synthetic_log(
    directory: str,
    num_interactions: int,
    num_items: int,
    seed: int = 0,
    mean_length: float = 20.0,
    zipf_exponent: float = 1.0,
    chunk_users: int = 20_000,
) -> dict[str, int]:
    """Writes the log as Parquet shards, one per chunk, and ``items.csv`` (item_id, title).

    Shards are ``interactions-NNNNN-of-MMMMM.parquet`` with the canonical columns user_id
    (``"u<index>"``), item_id (``"i<index>"``) and timestamp (int64), each written under a
    temporary name and renamed when complete; read in name order, they are the log.

    Returns:
        ``{"interactions", "users", "items", "bytes"}``: counts and bytes on disk.
    """
    os.makedirs(directory, exist_ok=True)
    num_users = math.ceil(num_interactions / mean_length)
    total = math.ceil(num_users / chunk_users)
    rows, size = 0, 0
    chunks = synthetic_chunks(num_interactions, num_items, seed, mean_length, zipf_exponent, chunk_users)
    for k, (users, items, times) in enumerate(chunks):
        frame = pd.DataFrame(
            {
                USER_ID: pd.Series(np.char.add("u", users.astype(str)), dtype="str"),
                ITEM_ID: pd.Series(np.char.add("i", items.astype(str)), dtype="str"),
                TIMESTAMP: times,
            }
        )
        path = os.path.join(directory, f"interactions-{k:05d}-of-{total:05d}.parquet")
        _atomic_write(path, lambda tmp, frame=frame: frame.to_parquet(tmp, index=False))
        rows += len(frame)
        size += os.path.getsize(path)
    items_path = os.path.join(directory, "items.csv")
    texts = pd.DataFrame({ITEM_ID: [f"i{i}" for i in range(num_items)], "title": item_texts(num_items, seed)})
    _atomic_write(items_path, lambda tmp: texts.to_csv(tmp, index=False))
    size += os.path.getsize(items_path)
    return {"interactions": rows, "users": num_users, "items": num_items, "bytes": size}
