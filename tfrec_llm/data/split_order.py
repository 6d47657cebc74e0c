"""The ordering rules of the evaluation protocols (docs/evaluation.md): tie keys and priorities.

* ``tie_key``: sort all interactions by ``(user_id, item_id)`` in natural order, then
  ``tie_key = numpy.random.default_rng(42).random(n)`` in that order (:func:`assign_tie_keys`).
* A user's interactions are chronological by ``(timestamp, tie_key)``
  (:func:`chronological_rows`).
* Equal scores are ranked by :func:`tie_priority`, never by item id.

:mod:`tfrec_llm.data.splits` cuts the chronological rows into train frames and tasks. All
functions are pure: inputs are never modified.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID, id_positions, sort_ids
from tfrec_llm.errors import DataError

TIE_KEY = "tie_key"
TIE_KEY_SEED = 42
PRIORITY_SEED = 12345


def tie_priority(n_items: int) -> np.ndarray:
    """Fixed random priority for equal scores: ``default_rng(12345).permutation(n_items)``.

    Indexed by the item's position in ``Split.item_ids``; the lower priority ranks first.
    """
    return np.random.default_rng(PRIORITY_SEED).permutation(n_items)


def unique_codes(values: np.ndarray) -> np.ndarray:
    """Sorted unique int64 values (hash-based; faster than np.unique on 1M rows)."""
    return np.sort(pd.unique(values))


def _ranks(codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Natural-order rank among the ids that occur, for codes indexing ``ids``."""
    used = unique_codes(codes)
    lookup = np.full(len(ids), -1, dtype=np.int64)
    lookup[used] = id_positions(ids[used], sort_ids(ids[used]))
    return np.asarray(lookup[codes], dtype=np.int64)


def _sort_by(primary: np.ndarray, secondary: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Row order by (primary, secondary) int64 keys, ties kept in the order ``first``."""
    if len(first) == 0:
        return first
    low = int(secondary.min())
    span = int(secondary.max()) - low + 1
    if int(primary.max()) + 1 <= np.iinfo(np.int64).max // span:
        key = primary * np.int64(span) + (secondary - np.int64(low))
        return first[np.argsort(key[first], kind="stable")]
    return np.lexsort((np.argsort(first), secondary, primary))  # pragma: no cover - huge ranges


def _tie_keys(user_rank: np.ndarray, item_rank: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    n = len(user_rank)
    pair = user_rank * np.int64(item_rank.max(initial=0) + 1) + item_rank
    order = _sort_by(pair, timestamps, np.arange(n))
    keys = np.empty(n, dtype=np.float64)
    keys[order] = np.random.default_rng(TIE_KEY_SEED).random(n)
    return keys


def assign_tie_keys(interactions: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy with the float ``tie_key`` column of docs/evaluation.md.

    Interactions are ordered by (user_id, item_id) in natural order (repeated pairs by
    timestamp, then input position) and receive ``default_rng(42).random(n)`` in that order.
    """
    users = id_positions(interactions[USER_ID], sort_ids(interactions[USER_ID]))
    items = id_positions(interactions[ITEM_ID], sort_ids(interactions[ITEM_ID]))
    out = interactions.copy()
    out[TIE_KEY] = _tie_keys(users, items, interactions[TIMESTAMP].to_numpy(dtype=np.int64))
    return out


@dataclasses.dataclass(frozen=True)
class ChronologicalRows:
    """Interactions in chronological order, with integer codes per row.

    Attributes:
        frame: Public columns + ``tie_key``, sorted by (user natural order, timestamp, tie_key).
        user: ``[n]`` rank in ``user_ids`` (natural order).
        item: ``[n]`` position in ``item_ids`` (the catalog).
        index: ``[n]`` position within the user's rows.
        size: ``[n]`` the user's row count.
        user_ids: The users, natural order.
        item_ids: The catalog, natural order.
    """

    frame: pd.DataFrame
    user: np.ndarray
    item: np.ndarray
    index: np.ndarray
    size: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def take(self, rows: np.ndarray) -> pd.DataFrame:
        """The rows selected by the boolean mask ``rows``, re-indexed from 0."""
        return self.frame.loc[rows].reset_index(drop=True)


def chronological_rows(
    interactions: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, where: str
) -> ChronologicalRows:
    """Codes the interactions and sorts them by (user, timestamp, tie_key).

    Args:
        interactions: Canonical interactions.
        user_ids: The users in natural order.
        item_ids: The catalog in natural order.
        where: The caller's name, for the error message.

    Returns:
        The sorted rows with their codes.

    Raises:
        DataError: If an interaction names an item (user) missing from ``item_ids``
            (``user_ids``).
    """
    user = id_positions(interactions[USER_ID], user_ids)
    item = id_positions(interactions[ITEM_ID], item_ids)
    for codes, column, kind in ((item, ITEM_ID, "items"), (user, USER_ID, "users")):
        unknown = codes < 0
        if unknown.any():
            raise DataError(
                f"{where}: {int(unknown.sum())} interactions name {column} values missing from "
                f"the {kind} frame, e.g. {interactions[column].iloc[int(np.argmax(unknown))]!r}. "
                f"Add them to {kind}."
            )
    timestamps = interactions[TIMESTAMP].to_numpy(dtype=np.int64)
    tie = _tie_keys(_ranks(user, user_ids), _ranks(item, item_ids), timestamps)
    order = _sort_by(user, timestamps, np.argsort(tie))
    frame = interactions.iloc[order].reset_index(drop=True)
    frame[TIE_KEY] = tie[order]
    user, item = user[order], item[order]
    n = len(user)
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if n else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, n])
    return ChronologicalRows(
        frame,
        user,
        item,
        np.arange(n) - np.repeat(starts, counts),
        np.repeat(counts, counts),
        user_ids,
        item_ids,
    )
