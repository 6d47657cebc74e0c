"""The evaluation protocols of docs/evaluation.md: ``loo``, ``cold-items``, ``cold-users``.

Also the model-selection twins of B and C, ``cold-items-select`` (:data:`ITEM_SELECTION_PROTOCOL`)
and ``cold-users-select`` (:data:`SELECTION_PROTOCOL`): the protocol's cold items or users are
dropped and its own construction is repeated inside the warm ones, so that a setting meant for
cold items or users is chosen without reading the protocol's TEST.

This is the one module that turns interactions into train frames and evaluation tasks; every
model and baseline goes through it. All functions are pure: inputs are never modified.

Ordering rules (docs/evaluation.md; tie keys, chronological order and the tie priority live in
:mod:`tfrec_llm.data.split_order`, the :class:`Split` and :class:`EvalTask` results in
:mod:`tfrec_llm.data.split_types`; both are importable from here):

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

import logging

import numpy as np
import pandas as pd

from tfrec_llm.config.choices import ITEM_SELECTION_PROTOCOL, PROTOCOLS, SELECTION_PROTOCOL
from tfrec_llm.data.schema import (
    ITEM_ID,
    USER_ID,
    RecDataset,
    id_positions,
    sort_ids,
    validate_frame,
)
from tfrec_llm.data.split_order import (
    PRIORITY_SEED,
    TIE_KEY,
    TIE_KEY_SEED,
    ChronologicalRows,
    assign_tie_keys,
    chronological_rows,
    tie_priority,
    unique_codes,
)
from tfrec_llm.data.split_types import EvalTask, Split, check_usable
from tfrec_llm.errors import ConfigError

__all__ = [
    "COLD_FRACTION",
    "COLD_USER_HISTORY",
    "PRIORITY_SEED",
    "PROTOCOLS",
    "PROTOCOL_SEED",
    "SELECTION_PROTOCOL",
    "TIE_KEY",
    "TIE_KEY_SEED",
    "ITEM_SELECTION_PROTOCOL",
    "EvalTask",
    "Split",
    "assign_tie_keys",
    "check_usable",
    "make_split",
    "split_cold_item_selection",
    "split_cold_items",
    "split_cold_user_selection",
    "split_cold_users",
    "split_leave_last_out",
    "tie_priority",
]

logger = logging.getLogger(__name__)

PROTOCOL_SEED = 42
COLD_FRACTION = 0.2
COLD_USER_HISTORY = 5


def _first(keys: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each key."""
    return np.asarray(~pd.Series(keys).duplicated(keep="first").to_numpy(), dtype=bool)


def _slices(values: np.ndarray, owners: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, ...]:
    lo = np.searchsorted(owners, users, side="left")
    hi = np.searchsorted(owners, users, side="right")
    return tuple(values[a:b] for a, b in zip(lo, hi, strict=True))


def _task(
    name: str,
    rows: ChronologicalRows,
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
    candidates = unique_codes(rows.user[target_idx])
    target_idx = target_idx[_first(pair[target_idx])]
    target_idx = target_idx[~pd.Series(pair[target_idx]).isin(pair[seen_idx]).to_numpy()]
    users = unique_codes(rows.user[target_idx])
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


def _last_of_warm(rows: ChronologicalRows, warm: np.ndarray, protocol: str) -> np.ndarray:
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
            "%s: %d users with fewer than 2 warm interactions stay in TRAIN only (no VALID target).",
            protocol,
            short,
        )
    return valid


def _warm_parts(
    rows: ChronologicalRows, is_cold: np.ndarray, dropped: np.ndarray, protocol: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(warm, VALID, TRAIN) row masks of a cold protocol: warm = neither cold nor dropped."""
    warm = ~is_cold & ~dropped
    valid = _last_of_warm(rows, warm, protocol)
    return warm, valid, warm & ~valid


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
    rows = chronological_rows(interactions, sort_ids(interactions[USER_ID]), item_ids, "split_leave_last_out")
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
            docs/evaluation.md).

    Returns:
        The split with ``cold_item_ids`` set.
    """
    item_ids = _check(interactions, items, "split_cold_items")
    rows = chronological_rows(interactions, sort_ids(interactions[USER_ID]), item_ids, "split_cold_items")
    return _cold_item_split(rows, _choose(item_ids, seed), np.zeros(len(rows.item), bool), "cold-items")


def _cold_item_split(rows: ChronologicalRows, cold: np.ndarray, dropped: np.ndarray, protocol: str) -> Split:
    """Protocol B's construction on ``rows`` with ``cold`` items; ``dropped`` rows are in no part."""
    is_cold = np.isin(rows.item, id_positions(cold, rows.item_ids))
    warm, valid, train = _warm_parts(rows, is_cold, dropped, protocol)
    return Split(
        protocol=protocol,
        item_ids=rows.item_ids,
        train=rows.take(train),
        train_valid=rows.take(warm),
        valid=_task("valid", rows, train, valid, None, protocol),
        test=_task("test", rows, warm, is_cold, cold, protocol),
        cold_item_ids=cold,
        cold_user_ids=np.asarray([], dtype=object),
    )


def split_cold_item_selection(interactions: pd.DataFrame, items: pd.DataFrame, *, seed: int) -> Split:
    """Protocol B's model-selection twin (``cold-items-select``), never reporting quality.

    Every interaction with one of protocol B's cold items (``split_cold_items``, same ``seed``)
    is dropped; those items stay in the catalog but are never candidates. 20% of B's warm items,
    drawn the same way from the warm ids, play the cold items: left out of TRAIN, they are the
    ``test`` candidates. Choose a cold-item setting by this split's ``test`` task, report it on B.

    Returns:
        The split, ``protocol`` ``"cold-items-select"``, ``cold_item_ids`` the stand-in items.
    """
    item_ids = _check(interactions, items, ITEM_SELECTION_PROTOCOL)
    b_cold = _choose(item_ids, seed)
    stand_in = _choose(item_ids[~np.isin(item_ids, b_cold)], seed)
    users = sort_ids(interactions[USER_ID])
    rows = chronological_rows(interactions, users, item_ids, ITEM_SELECTION_PROTOCOL)
    dropped = np.isin(rows.item, id_positions(b_cold, item_ids))
    return _cold_item_split(rows, stand_in, dropped, ITEM_SELECTION_PROTOCOL)


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
            docs/evaluation.md).

    Returns:
        The split with ``cold_user_ids`` set.

    Raises:
        DataError: If an interaction names a user missing from ``users``.
    """
    item_ids = _check(interactions, items, "split_cold_users")
    validate_frame(users, "users", "split_cold_users")
    user_ids = sort_ids(users[USER_ID])
    rows = chronological_rows(interactions, user_ids, item_ids, "split_cold_users")
    return _cold_user_split(rows, _choose(user_ids, seed), np.zeros(len(rows.user), bool), "cold-users")


def _cold_user_split(rows: ChronologicalRows, cold: np.ndarray, dropped: np.ndarray, protocol: str) -> Split:
    """Protocol C's construction on ``rows`` with ``cold`` users; ``dropped`` rows are in no part."""
    is_cold = np.isin(rows.user, id_positions(cold, rows.user_ids))
    warm, valid, train = _warm_parts(rows, is_cold, dropped, protocol)
    history = is_cold & (rows.index < COLD_USER_HISTORY)
    targets = is_cold & (rows.index >= COLD_USER_HISTORY)
    few = int((is_cold & (rows.index == 0) & (rows.size <= COLD_USER_HISTORY)).sum())
    absent = len(cold) - int((is_cold & (rows.index == 0)).sum())
    if few or absent:
        logger.info(
            "%s: %d cold users with 1..%d interactions and %d with none have no "
            "targets and are left out of TEST.",
            protocol,
            few,
            COLD_USER_HISTORY,
            absent,
        )
    return Split(
        protocol=protocol,
        item_ids=rows.item_ids,
        train=rows.take(train),
        train_valid=rows.take(warm),
        valid=_task("valid", rows, train, valid, None, protocol),
        test=_task("test", rows, history, targets, None, protocol),
        cold_item_ids=np.asarray([], dtype=object),
        cold_user_ids=cold,
    )


def split_cold_user_selection(
    interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, *, seed: int
) -> Split:
    """Protocol C's model-selection twin (``cold-users-select``), never reporting quality.

    Protocol C's cold users (``split_cold_users`` with the same ``seed``) are in no part of it.
    20% of C's warm users, drawn the same way from the warm ids, play the cold users:
    their first 5 interactions are the ``test`` history, the rest its targets, and they are not
    in TRAIN. Choose a cold-user setting by this split's ``test`` task and report it on C.

    Args:
        interactions: Canonical interactions.
        items: Canonical items (the catalog).
        users: Canonical users.
        seed: The seed of both draws (42 in docs/evaluation.md).

    Returns:
        The split, ``protocol`` ``"cold-users-select"``, ``cold_user_ids`` the stand-in cold users.
    """
    item_ids = _check(interactions, items, SELECTION_PROTOCOL)
    validate_frame(users, "users", SELECTION_PROTOCOL)
    user_ids = sort_ids(users[USER_ID])
    c_cold = _choose(user_ids, seed)
    stand_in = _choose(user_ids[~np.isin(user_ids, c_cold)], seed)
    # Tie keys and chronology come from the whole data set, exactly as protocol C sees them.
    rows = chronological_rows(interactions, user_ids, item_ids, SELECTION_PROTOCOL)
    dropped = np.isin(rows.user, id_positions(c_cold, user_ids))
    return _cold_user_split(rows, stand_in, dropped, SELECTION_PROTOCOL)


def make_split(dataset: RecDataset, protocol: str) -> Split:
    """Splits a data set under one of ``PROTOCOLS`` with the seeds of docs/evaluation.md.

    The selection twins ``"cold-users-select"`` and ``"cold-items-select"`` are accepted too:
    splits to choose settings on, not protocols to report (`split_cold_user_selection`,
    `split_cold_item_selection`).

    Args:
        dataset: The canonical data set.
        protocol: One of ``config.choices.SPLIT_NAMES``.

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
        return split_cold_users(dataset.interactions, dataset.items, dataset.users, seed=PROTOCOL_SEED)
    if protocol == SELECTION_PROTOCOL:
        return split_cold_user_selection(
            dataset.interactions, dataset.items, dataset.users, seed=PROTOCOL_SEED
        )
    if protocol == ITEM_SELECTION_PROTOCOL:
        return split_cold_item_selection(dataset.interactions, dataset.items, seed=PROTOCOL_SEED)
    raise ConfigError(
        f"protocol={protocol!r} is unknown; use one of {PROTOCOLS} (or {SELECTION_PROTOCOL!r} / "
        f"{ITEM_SELECTION_PROTOCOL!r} to choose cold-user / cold-item settings)."
    )
