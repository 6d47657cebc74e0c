"""The evaluation protocols of EVALUATION.md: ``loo``, ``cold-items``, ``cold-users``.

This is the one module that turns interactions into train frames and evaluation tasks; every
model and baseline goes through it. All functions are pure: inputs are never modified.

Ordering rules (EVALUATION.md):

* ``tie_key``: sort all interactions by ``(user_id, item_id)`` in natural order, then
  ``tie_key = numpy.random.default_rng(42).random(n)`` in that order (:func:`assign_tie_keys`).
* A user's interactions are chronological by ``(timestamp, tie_key)``.
* Cold items/users: ``numpy.random.default_rng(seed).choice(natural-sorted ids,
  size=round(0.2 * n), replace=False)``; ``make_split`` uses ``seed=42``.
* Equal scores are ranked by :func:`tie_priority`, never by item id.

Every evaluation target has a non-empty training history under ``loo`` and in the ``valid``
tasks: users with fewer than 3 interactions (``loo``) or fewer than 2 warm interactions
(``valid`` of the cold protocols) stay whole in TRAIN and get no target. Targets are
de-duplicated and never include an item of the user's ``exclude`` list; a user left without
targets is not in the task. Each such case is counted in an INFO log message.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from tfrec_llm.config.choices import PROTOCOLS
from tfrec_llm.data.schema import (
    ITEM_ID,
    TIMESTAMP,
    USER_ID,
    RecDataset,
    id_positions,
    sort_ids,
    validate_frame,
)
from tfrec_llm.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

TIE_KEY = "tie_key"
TIE_KEY_SEED = 42
PROTOCOL_SEED = 42
PRIORITY_SEED = 12345
COLD_FRACTION = 0.2
COLD_USER_HISTORY = 5


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """One ranking task: per user a history, the items to exclude, and the targets.

    Attributes:
        name: ``"valid"`` or ``"test"``.
        user_ids: ``[n]`` str user ids, natural order.
        histories: Per user, chronological item ids the model may condition on.
        exclude: Per user, item ids removed from the ranking (the history, de-duplicated).
        targets: Per user, target item ids (non-empty, de-duplicated, none in ``exclude``).
        candidate_ids: ``None`` ranks the whole catalog; cold-items: the cold item ids.
    """

    name: str
    user_ids: np.ndarray
    histories: tuple[np.ndarray, ...]
    exclude: tuple[np.ndarray, ...]
    targets: tuple[np.ndarray, ...]
    candidate_ids: np.ndarray | None


@dataclasses.dataclass(frozen=True)
class Split:
    """Train frames and evaluation tasks of one protocol.

    Attributes:
        protocol: One of ``PROTOCOLS``.
        item_ids: The whole catalog in natural order (= score column order of a Scorer).
        train: Interactions to fit on, plus float ``tie_key``; sorted by (user natural order,
            timestamp, tie_key).
        train_valid: ``train`` plus the VALID targets (refit, test histories); same layout.
        valid: Validation task (early stopping, tuning).
        test: Test task.
        cold_item_ids: Cold items in natural order (empty unless ``cold-items``).
        cold_user_ids: Cold users in natural order (empty unless ``cold-users``).
    """

    protocol: str
    item_ids: np.ndarray
    train: pd.DataFrame
    train_valid: pd.DataFrame
    valid: EvalTask
    test: EvalTask
    cold_item_ids: np.ndarray
    cold_user_ids: np.ndarray


def tie_priority(n_items: int) -> np.ndarray:
    """Fixed random priority for equal scores: ``default_rng(12345).permutation(n_items)``.

    Indexed by the item's position in ``Split.item_ids``; the lower priority ranks first.
    """
    return np.random.default_rng(PRIORITY_SEED).permutation(n_items)


def _ranks(codes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Natural-order rank among the ids that occur, for codes indexing ``ids``."""
    used = _unique(codes)
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
    """Returns a copy with the float ``tie_key`` column of EVALUATION.md.

    Interactions are ordered by (user_id, item_id) in natural order (repeated pairs by
    timestamp, then input position) and receive ``default_rng(42).random(n)`` in that order.
    """
    users = id_positions(interactions[USER_ID], sort_ids(interactions[USER_ID]))
    items = id_positions(interactions[ITEM_ID], sort_ids(interactions[ITEM_ID]))
    out = interactions.copy()
    out[TIE_KEY] = _tie_keys(users, items, interactions[TIMESTAMP].to_numpy(dtype=np.int64))
    return out


@dataclasses.dataclass(frozen=True)
class _Rows:
    """Interactions in chronological order, with integer codes per row."""

    frame: pd.DataFrame  # public columns + tie_key, chronological
    user: np.ndarray  # rank in user_ids (natural order)
    item: np.ndarray  # position in item_ids (catalog)
    index: np.ndarray  # position within the user's rows
    size: np.ndarray  # the user's row count
    user_ids: np.ndarray
    item_ids: np.ndarray

    def take(self, rows: np.ndarray) -> pd.DataFrame:
        return self.frame.loc[rows].reset_index(drop=True)


def _chronological(
    interactions: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, where: str
) -> _Rows:
    """Codes and sorts interactions.

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
    return _Rows(
        frame,
        user,
        item,
        np.arange(n) - np.repeat(starts, counts),
        np.repeat(counts, counts),
        user_ids,
        item_ids,
    )


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique int64 values (hash-based; faster than np.unique on 1M rows)."""
    return np.sort(pd.unique(values))


def _first(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key."""
    return np.asarray(~pd.Series(keys).duplicated(keep="first").to_numpy(), dtype=bool)


def _slices(values: np.ndarray, owners: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, ...]:
    lo = np.searchsorted(owners, users, side="left")
    hi = np.searchsorted(owners, users, side="right")
    return tuple(values[a:b] for a, b in zip(lo, hi, strict=True))


def _task(
    name: str,
    rows: _Rows,
    history: np.ndarray,
    targets: np.ndarray,
    candidate_ids: np.ndarray | None,
    protocol: str,
) -> EvalTask:
    """Builds a task from row masks; drops repeated/excluded targets and users without targets.

    Only users with at least one target row are considered; rows are chronological per user.
    """
    pair = rows.user * np.int64(len(rows.item_ids)) + rows.item
    hist_idx = np.flatnonzero(history)
    seen_idx = hist_idx[_first(pair[hist_idx])]
    target_idx = np.flatnonzero(targets)
    candidates = _unique(rows.user[target_idx])
    target_idx = target_idx[_first(pair[target_idx])]
    target_idx = target_idx[~pd.Series(pair[target_idx]).isin(pair[seen_idx]).to_numpy()]
    users = _unique(rows.user[target_idx])
    if len(users) < len(candidates):
        logger.info(
            "%s/%s: %d users have no target outside their history and are left out.",
            protocol,
            name,
            len(candidates) - len(users),
        )
    item_values = rows.item_ids[rows.item]
    return EvalTask(
        name=name,
        user_ids=rows.user_ids[users],
        histories=_slices(item_values[hist_idx], rows.user[hist_idx], users),
        exclude=_slices(item_values[seen_idx], rows.user[seen_idx], users),
        targets=_slices(item_values[target_idx], rows.user[target_idx], users),
        candidate_ids=candidate_ids,
    )


def _check(interactions: pd.DataFrame, items: pd.DataFrame, where: str) -> np.ndarray:
    validate_frame(interactions, "interactions", where)
    validate_frame(items, "items", where)
    return sort_ids(items[ITEM_ID])


def _choose(ids: np.ndarray, seed: int) -> np.ndarray:
    size = round(COLD_FRACTION * len(ids))
    return sort_ids(np.random.default_rng(seed).choice(ids, size=size, replace=False))


def _last_of_warm(rows: _Rows, warm: np.ndarray, protocol: str) -> np.ndarray:
    """VALID rows: the last warm interaction of each user with >= 2 warm interactions."""
    warm_idx = np.flatnonzero(warm)
    user = rows.user[warm_idx]
    last = np.r_[user[1:] != user[:-1], True] if len(user) else np.zeros(0, dtype=bool)
    first = np.r_[True, user[1:] != user[:-1]] if len(user) else np.zeros(0, dtype=bool)
    valid = np.zeros(len(warm), dtype=bool)
    valid[warm_idx[last & ~first]] = True
    short = int((last & first).sum())
    if short:
        logger.info(
            "%s: %d users with fewer than 2 warm interactions stay in TRAIN only "
            "(no VALID target).",
            protocol,
            short,
        )
    return valid


def split_leave_last_out(interactions: pd.DataFrame, items: pd.DataFrame) -> Split:
    """Protocol A (``loo``): last interaction -> TEST, second-to-last -> VALID, rest -> TRAIN.

    Users with fewer than 3 interactions keep all of them in TRAIN and are in neither task.

    Args:
        interactions: Canonical interactions.
        items: Canonical items (the catalog).

    Returns:
        The split; ``valid``: history TRAIN, target the VALID item; ``test``: history
        TRAIN+VALID, target the TEST item; both rank the whole catalog.
    """
    item_ids = _check(interactions, items, "split_leave_last_out")
    rows = _chronological(
        interactions, sort_ids(interactions[USER_ID]), item_ids, "split_leave_last_out"
    )
    eligible = rows.size >= 3
    test = eligible & (rows.index == rows.size - 1)
    valid = eligible & (rows.index == rows.size - 2)
    short = int(((rows.index == 0) & ~eligible).sum())
    if short:
        logger.info("loo: %d users with fewer than 3 interactions stay in TRAIN only.", short)
    train = ~(test | valid)
    return Split(
        protocol="loo",
        item_ids=item_ids,
        train=rows.take(train),
        train_valid=rows.take(~test),
        valid=_task("valid", rows, train, valid, None, "loo"),
        test=_task("test", rows, ~test, test, None, "loo"),
        cold_item_ids=np.asarray([], dtype=object),
        cold_user_ids=np.asarray([], dtype=object),
    )


def split_cold_items(interactions: pd.DataFrame, items: pd.DataFrame, *, seed: int) -> Split:
    """Protocol B (``cold-items``): 20% of the catalog never appears in training.

    Warm interactions (no cold item): the last per user (with >= 2) is VALID, the rest TRAIN.
    Test: users with >= 1 cold interaction; candidates = cold items; targets = their cold
    items; history/exclude = their warm interactions (TRAIN+VALID; may be empty).

    Args:
        interactions: Canonical interactions.
        items: Canonical items (the catalog, cold items included).
        seed: Seed of ``default_rng(seed).choice`` over the natural-sorted catalog (42 in
            EVALUATION.md).

    Returns:
        The split with ``cold_item_ids`` set.
    """
    item_ids = _check(interactions, items, "split_cold_items")
    cold = _choose(item_ids, seed)
    rows = _chronological(
        interactions, sort_ids(interactions[USER_ID]), item_ids, "split_cold_items"
    )
    is_cold = np.isin(rows.item, id_positions(cold, item_ids))
    valid = _last_of_warm(rows, ~is_cold, "cold-items")
    train = ~is_cold & ~valid
    return Split(
        protocol="cold-items",
        item_ids=item_ids,
        train=rows.take(train),
        train_valid=rows.take(~is_cold),
        valid=_task("valid", rows, train, valid, None, "cold-items"),
        test=_task("test", rows, ~is_cold, is_cold, cold, "cold-items"),
        cold_item_ids=cold,
        cold_user_ids=np.asarray([], dtype=object),
    )


def split_cold_users(
    interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, *, seed: int
) -> Split:
    """Protocol C (``cold-users``): 20% of the users never appear in training.

    Warm users: the last interaction (users with >= 2) is VALID, the rest TRAIN. Test, per cold
    user in chronological order: the first 5 interactions are history and exclude, the rest are
    targets over the whole catalog; cold users with <= 5 interactions have no target and are
    left out.

    Args:
        interactions: Canonical interactions.
        items: Canonical items (the catalog).
        users: Canonical users; cold users are drawn from its ids.
        seed: Seed of ``default_rng(seed).choice`` over the natural-sorted user ids (42 in
            EVALUATION.md).

    Returns:
        The split with ``cold_user_ids`` set.

    Raises:
        DataError: If an interaction names a user missing from ``users``.
    """
    item_ids = _check(interactions, items, "split_cold_users")
    validate_frame(users, "users", "split_cold_users")
    user_ids = sort_ids(users[USER_ID])
    cold = _choose(user_ids, seed)
    rows = _chronological(interactions, user_ids, item_ids, "split_cold_users")
    is_cold = np.isin(rows.user, id_positions(cold, user_ids))
    valid = _last_of_warm(rows, ~is_cold, "cold-users")
    train = ~is_cold & ~valid
    history = is_cold & (rows.index < COLD_USER_HISTORY)
    targets = is_cold & (rows.index >= COLD_USER_HISTORY)
    few = int((is_cold & (rows.index == 0) & (rows.size <= COLD_USER_HISTORY)).sum())
    absent = len(cold) - int((is_cold & (rows.index == 0)).sum())
    if few or absent:
        logger.info(
            "cold-users: %d cold users with 1..%d interactions and %d with none have no "
            "targets and are left out of TEST.",
            few,
            COLD_USER_HISTORY,
            absent,
        )
    return Split(
        protocol="cold-users",
        item_ids=item_ids,
        train=rows.take(train),
        train_valid=rows.take(~is_cold),
        valid=_task("valid", rows, train, valid, None, "cold-users"),
        test=_task("test", rows, history, targets, None, "cold-users"),
        cold_item_ids=np.asarray([], dtype=object),
        cold_user_ids=cold,
    )


def make_split(dataset: RecDataset, protocol: str) -> Split:
    """Splits a data set under one of ``PROTOCOLS`` with the seeds of EVALUATION.md.

    Args:
        dataset: The canonical data set.
        protocol: ``"loo"``, ``"cold-items"`` or ``"cold-users"``.

    Returns:
        The :class:`Split`.

    Raises:
        ConfigError: If ``protocol`` is unknown.
    """
    if protocol == "loo":
        return split_leave_last_out(dataset.interactions, dataset.items)
    if protocol == "cold-items":
        return split_cold_items(dataset.interactions, dataset.items, seed=PROTOCOL_SEED)
    if protocol == "cold-users":
        return split_cold_users(
            dataset.interactions, dataset.items, dataset.users, seed=PROTOCOL_SEED
        )
    raise ConfigError(f"protocol={protocol!r} is unknown; use one of {PROTOCOLS}.")
