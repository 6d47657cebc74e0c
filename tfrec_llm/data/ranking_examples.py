"""Examples of the ranking model: rated pairs, clicks with sampled negatives, candidate lists.

Every example is a (user, item) pair (or a user and a list of items) with the user's history
*before* the interaction, taken from a history frame (TRAIN): the items the user interacted
with at an earlier timestamp, most recent last, -1 padded on the left. A strict ``<`` on the
timestamp keeps the examples of TRAIN and of held-out rows alike, and never shows a held-out
row's own item or anything after it.

Pure functions of frames, a catalog and an explicit seed.

Example:
    >>> train = rating_examples(train_frame, catalog, 20, history=train_frame)
    >>> test = rating_examples(test_frame, catalog, 20, history=train_frame)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID
from tfrec_llm.errors import DataError


def histories_before(
    frame: pd.DataFrame, catalog: Catalog, history_length: int, history: pd.DataFrame
) -> np.ndarray:
    """[len(frame), history_length] int32: per row, the user's ``history`` items strictly earlier.

    Args:
        frame: Rows needing a history (``user_id``, ``timestamp``).
        catalog: Integer tables.
        history_length: Items kept (the most recent ones).
        history: Interactions the histories are read from (e.g. TRAIN).
    """
    out = np.full((len(frame), history_length), -1, np.int32)
    hist = history.assign(_item=catalog.item_index(history[ITEM_ID].to_numpy()))
    hist = hist[hist["_item"] >= 0].sort_values([USER_ID, TIMESTAMP], kind="stable")
    by_user = {
        user: (group[TIMESTAMP].to_numpy(), group["_item"].to_numpy(np.int32))
        for user, group in hist.groupby(USER_ID, sort=False)
    }
    users = frame[USER_ID].to_numpy()
    times = frame[TIMESTAMP].to_numpy()
    for row, (user, time) in enumerate(zip(users, times, strict=True)):
        if user not in by_user:
            continue
        stamps, items = by_user[user]
        end = int(np.searchsorted(stamps, time, side="left"))
        window = items[max(0, end - history_length) : end]
        if len(window):
            out[row, history_length - len(window) :] = window
    return out


def _pairs(frame: pd.DataFrame, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """[n] user and item indices; DataError for an item outside the catalog."""
    items = catalog.item_index(frame[ITEM_ID].to_numpy())
    if (items < 0).any():
        bad = frame[ITEM_ID].to_numpy()[items < 0][:5]
        raise DataError(f"ranking examples reference item ids outside the catalog, e.g. {list(bad)}")
    return catalog.user_index(frame[USER_ID].to_numpy()).astype(np.int32), items.astype(np.int32)


def rating_examples(
    frame: pd.DataFrame, catalog: Catalog, history_length: int, history: pd.DataFrame
) -> dict[str, np.ndarray]:
    """``user`` [n], ``item`` [n], ``history`` [n, L], ``rating`` [n] float32 of rated rows.

    Raises:
        DataError: The frame has no ``rating`` column, or an item is outside the catalog.
    """
    if RATING not in frame.columns:
        raise DataError("ranking.objective=rating needs a rating column in the interactions")
    users, items = _pairs(frame, catalog)
    return {
        "user": users,
        "item": items,
        "history": histories_before(frame, catalog, history_length, history),
        "rating": frame[RATING].to_numpy(np.float32),
    }


def _negatives(
    users: np.ndarray, count: int, seen: dict[int, set[int]], num_items: int, rng: np.random.Generator
) -> np.ndarray:
    """[n, count] items drawn uniformly among those the user has not interacted with."""
    out = rng.integers(0, num_items, size=(len(users), count))
    for row, user in enumerate(users):
        known = seen.get(int(user), set())
        if len(known) >= num_items:
            raise DataError(f"user index {user} interacted with every item: no negative to sample")
        for col in range(count):
            while int(out[row, col]) in known:
                out[row, col] = rng.integers(0, num_items)
    return out.astype(np.int32)


def _seen(frame: pd.DataFrame, catalog: Catalog) -> dict[int, set[int]]:
    users, items = (
        catalog.user_index(frame[USER_ID].to_numpy()),
        catalog.item_index(frame[ITEM_ID].to_numpy()),
    )
    seen: dict[int, set[int]] = {}
    for user, item in zip(users, items, strict=True):
        seen.setdefault(int(user), set()).add(int(item))
    return seen


def click_examples(
    frame: pd.DataFrame,
    catalog: Catalog,
    history_length: int,
    history: pd.DataFrame,
    *,
    negatives: int,
    seed: int,
    known: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """Each row a click (``label`` 1) plus ``negatives`` sampled non-clicks (``label`` 0).

    A negative is an item the user has no interaction with in ``known`` (default: ``frame``
    and ``history`` together), drawn uniformly with ``numpy.random.default_rng(seed)``; it
    shares the positive's user and history. Rows are ordered positive, its negatives, next
    positive, ...

    Returns:
        ``user`` [m], ``item`` [m], ``history`` [m, L], ``label`` [m] float32, with
        ``m = n * (1 + negatives)``.
    """
    users, items = _pairs(frame, catalog)
    histories = histories_before(frame, catalog, history_length, history)
    known = pd.concat([frame, history]) if known is None else known
    sampled = _negatives(
        users, negatives, _seen(known, catalog), catalog.num_items, np.random.default_rng(seed)
    )
    width = 1 + negatives
    return {
        "user": np.repeat(users, width),
        "item": np.concatenate([items[:, None], sampled], axis=1).reshape(-1),
        "history": np.repeat(histories, width, axis=0),
        "label": np.tile(np.r_[1.0, np.zeros(negatives)], len(users)).astype(np.float32),
    }


def list_examples(
    frame: pd.DataFrame,
    catalog: Catalog,
    history_length: int,
    history: pd.DataFrame,
    *,
    list_size: int,
    seed: int,
    known: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """Per row a list of ``list_size`` candidates: the row's item at a random slot + negatives.

    Returns:
        ``user`` [n], ``item`` [n, list_size], ``history`` [n, L], ``label`` [n, list_size]
        float32 (1 at the chosen item's slot).
    """
    users, items = _pairs(frame, catalog)
    rng = np.random.default_rng(seed)
    known = pd.concat([frame, history]) if known is None else known
    candidates = _negatives(users, list_size - 1, _seen(known, catalog), catalog.num_items, rng)
    slot = rng.integers(0, list_size, size=len(users))
    lists = np.insert(candidates, 0, 0, axis=1)
    rows = np.arange(len(users))
    lists[rows, 0] = lists[rows, slot]
    lists[rows, slot] = items
    label = np.zeros(lists.shape, np.float32)
    label[rows, slot] = 1.0
    return {
        "user": users,
        "item": lists.astype(np.int32),
        "history": histories_before(frame, catalog, history_length, history),
        "label": label,
    }


def random_split(
    interactions: pd.DataFrame, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): a uniform random ``test_fraction`` of the rows held out (the TFRS tutorials' split).

    ``numpy.random.default_rng(seed).permutation(n)``: the first ``round((1 - f) n)`` rows of
    the permutation are train.
    """
    order = np.random.default_rng(seed).permutation(len(interactions))
    cut = int(round((1.0 - test_fraction) * len(interactions)))
    return interactions.iloc[np.sort(order[:cut])], interactions.iloc[np.sort(order[cut:])]
