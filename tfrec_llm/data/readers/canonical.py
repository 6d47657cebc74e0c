"""From loaded tables to a validated `RecDataset`: ids, timestamps, ratings, catalog, users.

:func:`build_dataset` checks and converts the canonical columns (empty or missing ids,
unparsable timestamps and ratings, exact duplicate interactions, duplicate item/user rows,
interactions naming unknown items), records
each problem in the `IssueLog` (raised at once when strict, dropped and counted otherwise) and
logs one warning when anything was dropped or noticed. An empty file, and a log left without
any interaction, are one clear DataError each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tfrec_llm.data import schema
from tfrec_llm.data.readers.issues import MAX_EXAMPLES, IssueLog
from tfrec_llm.data.readers.table import LOC, RawTable, drop_rows, require
from tfrec_llm.data.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID, RecDataset
from tfrec_llm.errors import DataError

logger = logging.getLogger(__name__)

TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_INT_PATTERN = r"[+-]?[0-9]{1,18}"


MISSING_IDS = ("nan", "null", "none", "nat", "<na>", "n/a")
"""Id cells that mean "no value" (any case): dropped like an empty id in every format, so a CSV
``NaN`` and a JSON ``null`` are the same missing id (pandas and JSON writers spell it so)."""


def check_ids(table: RawTable, names: Sequence[str], log: IssueLog) -> None:
    """Strips ids; rows with an empty or missing (`MISSING_IDS`) id are ``empty_id``."""
    for name in names:
        table.frame[name] = table.frame[name].str.strip()
        values = table.frame[name]
        bad = (values == "").to_numpy()
        missing = values.str.lower().isin(MISSING_IDS).to_numpy()
        log.add("empty_id", table, name, table.frame.loc[bad], values[bad], "empty id")
        log.add(
            "empty_id",
            table,
            name,
            table.frame.loc[missing],
            values[missing],
            "missing id {value!r} (read as no id, like an empty cell or a JSON null)",
        )
        drop_rows(table, bad | missing)


def drop_duplicate_interactions(table: RawTable, frame: pd.DataFrame, log: IssueLog) -> pd.DataFrame:
    """Drops exact repeats of an interaction (first kept) as ``duplicate_interaction``.

    A repeat has the user, item and timestamp (and event and scenario, when the file has them)
    of an earlier row: it would count twice in training and could make a user's last two
    interactions the same item, changing which users are evaluated.
    """
    key = [c for c in (USER_ID, ITEM_ID, TIMESTAMP, *schema.INTERACTION_OPTIONAL[1:]) if c in frame.columns]
    dup = frame.duplicated(subset=key, keep="first").to_numpy()
    if dup.any():
        first = frame.drop_duplicates(subset=key, keep="first").set_index(key)[LOC]
        lines = first.reindex(pd.MultiIndex.from_frame(frame.loc[dup, key])).to_numpy()
        rows = frame.loc[dup]
        shown = [
            f"user {u!r}, item {i!r}, timestamp {t} repeats {table.unit} {line}"
            for u, i, t, line in zip(rows[USER_ID], rows[ITEM_ID], rows[TIMESTAMP], lines)
        ]
        log.add("duplicate_interaction", table, None, rows, shown, "duplicate interaction: {value}")
    return frame.loc[~dup]


def check_has_columns(table: RawTable, log: IssueLog, what: str) -> None:
    """Raises a DataError saying ``table``'s file is empty (or unreadable), not missing columns."""
    if any(str(c).strip() for c in table.frame.columns if c != LOC):
        return
    log.raise_first(table.path)  # strict: the first malformed line, with its number
    bad = log.dropped(table.path)
    why = f"none of its {bad} non-blank lines could be read" if bad else "it is empty"
    raise DataError(
        f"{table.path}: no {what} to read ({why}). Expected a header line naming the columns "
        "(or one JSON object per line) and one row per record; check data.path and data.source."
    )


def check_not_empty(table: RawTable, frame: pd.DataFrame, log: IssueLog, rows_read: int) -> None:
    """Raises one clear DataError when no interaction survived reading and cleaning."""
    if len(frame):
        return
    if rows_read == 0 and not log.dropped(table.path):
        why = "the file has a header but no data rows"
    else:
        report = log.report()
        counts = ", ".join(f"{r}={n}" for r, n in report.counts.items() if r not in schema.NOTE_REASONS)
        why = f"every row was dropped ({counts}; the warning above shows examples)"
    raise DataError(f"{table.path}: no usable interactions after cleaning: {why}.")


def parse_timestamps(values: pd.Series, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses integer/float unix times in ``unit`` or ISO-8601 strings to int64 seconds.

    Returns:
        ``(seconds [n] int64, ok [n] bool)``.
    """
    text = values.str.strip()
    factor = TIMESTAMP_UNITS[unit]
    seconds = np.zeros(len(text), dtype=np.int64)
    ok = np.zeros(len(text), dtype=bool)
    is_int = text.str.fullmatch(_INT_PATTERN).to_numpy(dtype=bool)
    seconds[is_int] = text[is_int].astype("int64").to_numpy() // factor
    ok |= is_int
    rest = ~ok
    if rest.any():
        number = pd.to_numeric(text[rest], errors="coerce").to_numpy(dtype=np.float64)
        finite = np.isfinite(number) & (np.abs(number) < 9e18)
        idx = np.flatnonzero(rest)[finite]
        seconds[idx] = np.floor(number[finite] / factor).astype(np.int64)
        ok[idx] = True
    rest = ~ok & (text != "").to_numpy()
    if rest.any():
        dates = pd.to_datetime(text[rest], format="ISO8601", utc=True, errors="coerce")
        valid = dates.notna().to_numpy()
        idx = np.flatnonzero(rest)[valid]
        delta = dates[valid] - pd.Timestamp(0, tz="UTC")
        seconds[idx] = (delta // pd.Timedelta(1, "s")).to_numpy(dtype=np.int64)
        ok[idx] = True
    return seconds, ok


def convert_interactions(table: RawTable, log: IssueLog, timestamp_unit: str) -> pd.DataFrame:
    """Checks ids, timestamps and ratings; returns the canonical interactions (+ ``LOC``)."""
    check_ids(table, (USER_ID, ITEM_ID), log)
    seconds, ok = parse_timestamps(table.frame[TIMESTAMP], timestamp_unit)
    bad = ~ok
    log.add(
        "bad_timestamp",
        table,
        TIMESTAMP,
        table.frame.loc[bad],
        table.frame.loc[bad, TIMESTAMP],
        f"unparsable timestamp {{value!r}}; expected unix time in {timestamp_unit!r} or an ISO-8601 date",
    )
    table.frame[TIMESTAMP] = seconds
    drop_rows(table, bad)
    if RATING in table.frame.columns:
        rating = pd.to_numeric(table.frame[RATING].str.strip(), errors="coerce")
        bad = ~np.isfinite(rating.to_numpy(dtype=np.float64))
        log.add(
            "bad_rating",
            table,
            RATING,
            table.frame.loc[bad],
            table.frame.loc[bad, RATING],
            "unparsable rating {value!r}; expected a number",
        )
        table.frame[RATING] = rating.to_numpy(dtype=np.float64)
        drop_rows(table, bad)
    keep = [
        c for c in (USER_ID, ITEM_ID, TIMESTAMP, *schema.INTERACTION_OPTIONAL) if c in table.frame.columns
    ]
    frame = table.frame[[*keep, LOC]].copy()
    frame[TIMESTAMP] = frame[TIMESTAMP].astype(np.int64)
    if RATING in frame.columns:
        frame[RATING] = frame[RATING].astype(np.float64)
    return frame


def convert_entities(table: RawTable, key: str, log: IssueLog) -> pd.DataFrame:
    """Checks the id column of an items/users table and drops repeated ids (first row wins)."""
    check_ids(table, (key,), log)
    dup = table.frame[key].duplicated().to_numpy()
    reason = "duplicate_item" if key == ITEM_ID else "duplicate_user"
    log.add(
        reason,
        table,
        key,
        table.frame.loc[dup],
        table.frame.loc[dup, key],
        "duplicate id {value!r} (an earlier row has it; the first row is kept)",
    )
    drop_rows(table, dup)
    return table.frame.copy()


def _ordered(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    order = schema.id_positions(frame[key], schema.sort_ids(frame[key]))
    return frame.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def build_dataset(
    name: str,
    interactions: RawTable,
    items: RawTable | None,
    users: RawTable | None,
    *,
    log: IssueLog,
    mapping: Mapping[str, str] | None = None,
    item_text_fields: Sequence[str] = (),
    item_categorical_fields: Sequence[str] = (),
    user_profile_fields: Sequence[str] = (),
    user_text_field: str | None = None,
    timestamp_unit: str = "s",
) -> RecDataset:
    """Turns loaded tables into a validated :class:`RecDataset` (steps 2 and 3 above)."""
    mapping = dict(mapping or {})
    if timestamp_unit not in TIMESTAMP_UNITS:
        raise DataError(
            f"timestamp_unit={timestamp_unit!r} is not supported; use one of "
            f"{sorted(TIMESTAMP_UNITS)} (ISO-8601 strings are always accepted)."
        )
    item_fields = list(dict.fromkeys([*item_text_fields, *item_categorical_fields]))
    user_fields = list(dict.fromkeys([*user_profile_fields, *([user_text_field] if user_text_field else [])]))
    for table, what in ((interactions, "interactions"), (items, "items"), (users, "users")):
        if table is not None:
            check_has_columns(table, log, what)
    require(interactions, schema.INTERACTION_REQUIRED, mapping)
    if items is not None:
        require(items, [ITEM_ID], mapping)
        require(items, item_fields, mapping)
    if users is not None:
        require(users, [USER_ID, *user_fields], mapping)

    rows_read = len(interactions.frame)
    inter = convert_interactions(interactions, log, timestamp_unit)
    inter = drop_duplicate_interactions(interactions, inter, log)
    log.raise_first(interactions.path)
    if items is not None:
        item_frame = convert_entities(items, ITEM_ID, log)
        log.raise_first(items.path)
        unknown = ~inter[ITEM_ID].isin(item_frame[ITEM_ID]).to_numpy()
        log.add(
            "unknown_item",
            interactions,
            ITEM_ID,
            inter.loc[unknown],
            inter.loc[unknown, ITEM_ID],
            f"item id {{value!r}} is not in {items.path}",
        )
        log.raise_first(interactions.path)
        inter = inter.loc[~unknown]
    else:
        ids = schema.sort_ids(inter[ITEM_ID])
        item_frame = pd.DataFrame({ITEM_ID: pd.Series(ids, dtype="str")})
        for field in item_fields:
            item_frame[field] = pd.Series([""] * len(ids), dtype="str")
        if item_text_fields:
            shown = [f"item {i!r} has empty text (no items file was given)" for i in ids[:MAX_EXAMPLES]]
            log.note("empty_text", len(ids), shown)
        item_frame[LOC] = np.zeros(len(ids), dtype=np.int64)
    check_not_empty(interactions, inter, log, rows_read)
    if items is not None and item_text_fields:
        text = item_frame[list(item_text_fields)].apply(lambda col: col.str.strip() != "")
        empty = ~text.any(axis=1).to_numpy()
        log.add(
            "empty_text",
            items,
            None,
            item_frame.loc[empty],
            item_frame.loc[empty, ITEM_ID],
            f"item {{value!r}} has empty text in all of {list(item_text_fields)} (kept)",
        )

    if users is not None:
        user_frame = convert_entities(users, USER_ID, log)
        log.raise_first(users.path)
    else:
        user_frame = pd.DataFrame({USER_ID: pd.Series([], dtype="str")})
        for field in user_fields:
            user_frame[field] = pd.Series([], dtype="str")
    missing = schema.sort_ids(inter.loc[~inter[USER_ID].isin(user_frame[USER_ID]), USER_ID])
    if len(missing):
        extra = pd.DataFrame(
            {c: pd.Series([""] * len(missing), dtype="str") for c in user_frame.columns if c != LOC}
        )
        extra[USER_ID] = pd.Series(missing, dtype="str").to_numpy()
        if users is not None or user_fields:
            where = f"not in {users.path}" if users is not None else "no users file was given"
            shown = [
                f"user {u!r} has no profile ({where}; empty fields added)" for u in missing[:MAX_EXAMPLES]
            ]
            log.note("missing_user_profile", len(missing), shown)
        user_frame = pd.concat([user_frame.drop(columns=[LOC], errors="ignore"), extra], ignore_index=True)

    report = log.report()
    dataset = RecDataset(
        name=name,
        interactions=inter.drop(columns=[LOC]).reset_index(drop=True),
        items=_ordered(item_frame.drop(columns=[LOC]).astype("str"), ITEM_ID),
        users=_ordered(user_frame.drop(columns=[LOC], errors="ignore").astype("str"), USER_ID),
        item_text_fields=tuple(item_text_fields),
        item_categorical_fields=tuple(item_categorical_fields),
        user_profile_fields=tuple(user_profile_fields),
        user_text_field=user_text_field,
        report=report,
    )
    if report:
        logger.warning("dataset %r: %s", name, report.summary())
    return dataset
