"""Reader for any CSV / TSV / Parquet / JSONL interaction log, plus the shared reader machinery.

Every reader in ``tfrec_llm.data.readers`` works in three steps:

1. load each file as a table of strings, remembering each row's line number (text files) or
   1-based row number (Parquet); lines with the wrong number of fields are ``malformed_row``;
2. check and convert the canonical columns (:func:`build_dataset`): empty ids, unparsable
   timestamps and ratings, duplicate item/user rows, interactions naming unknown items;
3. with ``strict=True`` raise :class:`~tfrec_llm.errors.DataError` at the first problem of a file
   (naming file, line/row and column); with ``strict=False`` drop the offending rows, count them
   per reason in ``RecDataset.report`` and log one warning.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrec_llm.data import schema
from tfrec_llm.data.schema import ITEM_ID, RATING, TIMESTAMP, USER_ID, RecDataset
from tfrec_llm.errors import DataError

logger = logging.getLogger(__name__)

LOC = "__loc__"  # internal column: line number (text) or 1-based row number (Parquet)
FORMATS = ("csv", "tsv", "parquet", "jsonl")
TIMESTAMP_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_INT_PATTERN = r"[+-]?[0-9]{1,18}"
_MAX_EXAMPLES = 5


@dataclasses.dataclass
class RawTable:
    """One file as strings: canonical column names, every value ``str``, plus ``LOC``.

    Attributes:
        path: The file, as given by the caller (quoted in messages).
        frame: ``str`` columns named canonically and the int64 ``LOC`` column.
        unit: ``"line"`` (text files) or ``"row"`` (Parquet), how ``LOC`` is quoted.
        source_names: Canonical column -> column name in the file, for messages.
    """

    path: str
    frame: pd.DataFrame
    unit: str
    source_names: dict[str, str] = dataclasses.field(default_factory=dict)

    def columns(self) -> list[str]:
        return [self.source_names.get(c, c) for c in self.frame.columns if c != LOC]

    def label(self, column: str | None) -> str:
        if column is None:
            return ""
        source = self.source_names.get(column, column)
        return f", column {source!r}" if source == column else f", column {source!r} ({column})"


@dataclasses.dataclass
class _Issue:
    reason: str
    path: str
    unit: str
    column_label: str
    locs: np.ndarray
    values: np.ndarray
    template: str

    def message(self, i: int) -> str:
        value = self.values[i]
        text = self.template.replace("{value!r}", repr(value)).replace("{value}", str(value))
        return f"{self.path}, {self.unit} {int(self.locs[i])}{self.column_label}: {text}"


class IssueLog:
    """Collects problems of one reader call; raises the first one per file when strict."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._issues: list[_Issue] = []
        self._notes: list[tuple[str, int, list[str]]] = []

    def note(self, reason: str, count: int, messages: Sequence[str]) -> None:
        """Records ``count`` kept rows of a note-only ``reason`` with example messages."""
        self._notes.append((reason, count, list(messages[:_MAX_EXAMPLES])))

    def add(
        self,
        reason: str,
        table: RawTable,
        column: str | None,
        rows: pd.DataFrame,
        values: Any,
        template: str,
    ) -> None:
        """Records ``rows`` (a slice of ``table.frame``) as problems of kind ``reason``."""
        if len(rows) == 0:
            return
        self._issues.append(
            _Issue(
                reason,
                table.path,
                table.unit,
                table.label(column),
                rows[LOC].to_numpy(dtype=np.int64),
                np.asarray(values, dtype=object),
                template,
            )
        )

    def raise_first(self, path: str) -> None:
        """In strict mode, raises the earliest dropping problem recorded for ``path``."""
        if not self.strict:
            return
        found = [i for i in self._issues if i.path == path and i.reason not in schema.NOTE_REASONS]
        if not found:
            return
        issue, pos = min(
            ((i, int(np.argmin(i.locs))) for i in found),
            key=lambda pair: int(pair[0].locs[pair[1]]),
        )
        total = sum(len(i.locs) for i in found)
        raise DataError(
            f"{issue.message(pos)}. ({total} problem(s) in this file; fix them, or pass "
            "strict=False to drop such rows and count them in dataset.report.)"
        )

    def report(self) -> schema.ValidationReport:
        issues = [
            (i.reason, len(i.locs), [i.message(k) for k in range(min(len(i.locs), _MAX_EXAMPLES))])
            for i in self._issues
        ]
        return schema.ValidationReport.from_problems([*issues, *self._notes])


# ----------------------------------------------------------------------------- file loading


def decode(path: str, encoding: str, fallback: str | None = None) -> str:
    """Reads a text file; ``fallback`` is tried when ``encoding`` cannot decode the bytes."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror or err}.") from err
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        if fallback is None:
            raise DataError(
                f"{path} is not valid {encoding} text ({err}); pass encoding=..."
            ) from err
        text = data.decode(fallback)
    return text.removeprefix("\ufeff")


def check_header(path: str, names: Sequence[str]) -> None:
    """Raises DataError if a header repeats a column name."""
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DataError(f"{path}: the header repeats column names {repeated}; rename them.")


def table_from_text(
    path: str, text: str, sep: str, log: IssueLog, names: Sequence[str] | None = None
) -> RawTable:
    """Splits unquoted delimited text; lines with the wrong number of fields are malformed.

    Args:
        path: File name for messages.
        text: The whole file.
        sep: Field separator (any length, no quoting).
        log: Where malformed lines are recorded.
        names: Column names; ``None`` reads them from the first line.
    """
    lines = text.split("\n")
    first = 0
    if names is None:
        header = lines[0].rstrip("\r") if lines else ""
        names = [n.strip() for n in header.split(sep)]
        first = 1
    check_header(path, names)
    n_fields = len(names)
    body = [line.rstrip("\r") for line in lines[first:]]
    counts = np.fromiter((line.count(sep) + 1 for line in body), dtype=np.int64, count=len(body))
    blank = np.fromiter((not line.strip() for line in body), dtype=bool, count=len(body))
    line_no = np.arange(first + 1, first + 1 + len(body), dtype=np.int64)
    good = (counts == n_fields) & ~blank
    bad = ~good & ~blank
    table = RawTable(path, pd.DataFrame(), "line")
    if bad.any():
        log.add(
            "malformed_row",
            table,
            None,
            pd.DataFrame({LOC: line_no[bad]}),
            counts[bad],
            f"malformed row: expected {n_fields} fields separated by {sep!r}, found {{value}}",
        )
    kept = [body[i] for i in np.flatnonzero(good)]
    frame = _split_lines(kept, sep, names)
    frame[LOC] = line_no[good]
    table.frame = frame
    return table


def _split_lines(lines: list[str], sep: str, names: Sequence[str]) -> pd.DataFrame:
    """Splits lines that all have ``len(names)`` fields (pandas' C parser, Python fallback)."""
    columns = [f"c{i}" for i in range(len(names))]
    joined = "\n".join(lines)
    frame = None
    if lines and "\r" not in joined:  # the C parser would end a row at a lone "\r"
        marker = (
            sep
            if len(sep) == 1
            else next((c for c in "\t\x1f\x1e\x1d\x01" if c not in joined), None)
        )
        if marker is not None:
            if marker != sep:
                joined = joined.replace(sep, marker)
            frame = pd.read_csv(
                io.StringIO(joined),
                sep=marker,
                header=None,
                names=columns,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                quoting=csv.QUOTE_NONE,
                skip_blank_lines=False,
                engine="c",
            )
            if len(frame) != len(lines):  # pragma: no cover - defensive
                frame = None
    if frame is None:
        frame = pd.DataFrame(
            [line.split(sep) for line in lines] or None, columns=columns, dtype=str
        )
    frame = frame.astype("str")
    frame.columns = list(names)
    return frame


def read_csv_table(path: str, delimiter: str, log: IssueLog, encoding: str) -> RawTable:
    """Reads a CSV/TSV file with a header line (RFC 4180 quoting allowed)."""
    text = decode(path, encoding)
    if '"' not in text:
        return table_from_text(path, text, delimiter, log)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [n.strip() for n in next(reader, [])]
    check_header(path, header)
    rows: list[list[str]] = []
    locs: list[int] = []
    bad_locs: list[int] = []
    bad_counts: list[int] = []
    start = reader.line_num + 1
    for row in reader:
        if row and len(row) == len(header):
            rows.append(row)
            locs.append(start)
        elif len(row) > 1 or (row and row[0].strip()):
            bad_locs.append(start)
            bad_counts.append(len(row))
        start = reader.line_num + 1
    table = RawTable(path, pd.DataFrame(), "line")
    log.add(
        "malformed_row",
        table,
        None,
        pd.DataFrame({LOC: bad_locs}),
        bad_counts,
        f"malformed row: expected {len(header)} fields separated by {delimiter!r}, found {{value}}",
    )
    frame = (
        pd.DataFrame(rows, columns=header, dtype=str)
        if rows
        else pd.DataFrame({h: pd.Series([], dtype="str") for h in header})
    )
    frame = frame.astype("str")
    frame[LOC] = np.asarray(locs, dtype=np.int64)
    table.frame = frame
    return table


def _to_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, pd.Timestamp):
        return str(value.isoformat())
    if isinstance(value, (list, tuple, np.ndarray)):
        return schema.MULTI_VALUE_SEP.join(_to_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def read_jsonl_table(path: str, log: IssueLog, encoding: str) -> RawTable:
    """Reads one JSON object per line; other lines are malformed. Missing keys become ``""``."""
    text = decode(path, encoding)
    records: list[dict[str, Any]] = []
    locs: list[int] = []
    bad_locs: list[int] = []
    bad_what: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            bad_locs.append(number)
            bad_what.append(f"invalid JSON ({err.msg})")
            continue
        if not isinstance(record, dict):
            bad_locs.append(number)
            bad_what.append(f"a JSON {type(record).__name__}, not an object")
            continue
        records.append(record)
        locs.append(number)
    table = RawTable(path, pd.DataFrame(), "line")
    log.add(
        "malformed_row",
        table,
        None,
        pd.DataFrame({LOC: bad_locs}),
        bad_what,
        "malformed row: {value}",
    )
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(str(k) for k in record))
    frame = pd.DataFrame(
        {name: pd.Series([_to_text(r.get(name)) for r in records], dtype="str") for name in names}
    )
    frame[LOC] = np.asarray(locs, dtype=np.int64)
    table.frame = frame
    return table


def read_parquet_table(path: str) -> RawTable:
    """Reads a Parquet file; every column is converted to text, rows are numbered from 1."""
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read Parquet file {path}: {err}.") from err
    frame = pd.DataFrame(index=range(len(raw)))
    for name in raw.columns:
        series = raw[name]
        if pd.api.types.is_datetime64_any_dtype(series.dtype):
            if getattr(series.dt, "tz", None) is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            text = series.dt.strftime("%Y-%m-%dT%H:%M:%S").fillna("")
        elif pd.api.types.is_integer_dtype(series.dtype) and not series.isna().any():
            text = series.astype("int64").astype(str)
        else:
            text = pd.Series([_to_text(v) for v in series.to_numpy(dtype=object)])
        frame[str(name)] = text.astype("str").to_numpy()
    frame = frame.astype("str")
    frame[LOC] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return RawTable(path, frame.reset_index(drop=True), "row")


def load_table(
    path: str | os.PathLike[str], file_format: str, log: IssueLog, encoding: str
) -> RawTable:
    """Loads one file of any supported format (``"auto"`` picks it from the extension)."""
    path = os.fspath(path)
    if file_format == "auto":
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in _EXTENSIONS:
            raise DataError(
                f"cannot tell the format of {path} from its extension {suffix!r}; pass "
                f"file_format= one of {FORMATS} (known extensions: {sorted(_EXTENSIONS)})."
            )
        file_format = _EXTENSIONS[suffix]
    if file_format not in FORMATS:
        raise DataError(
            f"file_format={file_format!r} is not supported; use 'auto' or one of {FORMATS}."
        )
    if not os.path.isfile(path):
        raise DataError(f"file not found: {path}.")
    if file_format == "parquet":
        return read_parquet_table(path)
    if file_format == "jsonl":
        return read_jsonl_table(path, log, encoding)
    return read_csv_table(path, "," if file_format == "csv" else "\t", log, encoding)


# ----------------------------------------------------------------------------- conversion


def apply_mapping(tables: Mapping[str, RawTable | None], columns: Mapping[str, str]) -> None:
    """Renames source columns to canonical names in every table that has them (in place).

    Raises:
        DataError: If a mapped source column is in none of the files.
    """
    present = {k: t for k, t in tables.items() if t is not None}
    for canonical, source in columns.items():
        if not any(source in t.frame.columns for t in present.values()):
            available = "; ".join(f"{t.path}: {t.columns()}" for t in present.values())
            raise DataError(
                f"columns maps {canonical!r} -> {source!r}, but no input file has a column "
                f"{source!r}. Available columns: {available}."
            )
    for table in present.values():
        renames = {s: c for c, s in columns.items() if s in table.frame.columns and s != c}
        clash = [c for c in renames.values() if c in table.frame.columns and c not in renames]
        table.frame = table.frame.drop(columns=clash).rename(columns=renames)
        table.source_names.update({c: s for s, c in renames.items()})


def require(table: RawTable, names: Sequence[str], mapping: Mapping[str, str]) -> None:
    """Raises DataError naming the file if a required canonical column is absent."""
    for name in names:
        if name not in table.frame.columns:
            if name in mapping:
                what, fix = f"{name!r} (column {mapping[name]!r} per `columns`)", "Fix `columns`."
            else:
                what = repr(name)
                fix = f"Pass columns={{{name!r}: '<column in the file>'}} to map one."
            raise DataError(
                f"{table.path}: missing required column {what}; available columns: "
                f"{table.columns()}. {fix}"
            )


def _drop(table: RawTable, bad: np.ndarray) -> None:
    if bad.any():
        table.frame = table.frame.loc[~bad].reset_index(drop=True)


def check_ids(table: RawTable, names: Sequence[str], log: IssueLog) -> None:
    """Strips ids; rows with an empty id are ``empty_id``."""
    for name in names:
        table.frame[name] = table.frame[name].str.strip()
        bad = (table.frame[name] == "").to_numpy()
        log.add(
            "empty_id", table, name, table.frame.loc[bad], table.frame.loc[bad, name], "empty id"
        )
        _drop(table, bad)


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
        f"unparsable timestamp {{value!r}}; expected unix time in {timestamp_unit!r} or "
        "an ISO-8601 date",
    )
    table.frame[TIMESTAMP] = seconds
    _drop(table, bad)
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
        _drop(table, bad)
    keep = [
        c
        for c in (USER_ID, ITEM_ID, TIMESTAMP, *schema.INTERACTION_OPTIONAL)
        if c in table.frame.columns
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
    _drop(table, dup)
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
    user_fields = list(
        dict.fromkeys([*user_profile_fields, *([user_text_field] if user_text_field else [])])
    )
    require(interactions, schema.INTERACTION_REQUIRED, mapping)
    if items is not None:
        require(items, [ITEM_ID], mapping)
        require(items, item_fields, mapping)
    if users is not None:
        require(users, [USER_ID, *user_fields], mapping)

    inter = convert_interactions(interactions, log, timestamp_unit)
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
            shown = [
                f"item {i!r} has empty text (no items file was given)" for i in ids[:_MAX_EXAMPLES]
            ]
            log.note("empty_text", len(ids), shown)
        item_frame[LOC] = np.zeros(len(ids), dtype=np.int64)
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
                f"user {u!r} has no profile ({where}; empty fields added)"
                for u in missing[:_MAX_EXAMPLES]
            ]
            log.note("missing_user_profile", len(missing), shown)
        user_frame = pd.concat(
            [user_frame.drop(columns=[LOC], errors="ignore"), extra], ignore_index=True
        )

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


def read_tabular(
    interactions_path: str | os.PathLike[str],
    items_path: str | os.PathLike[str] | None = None,
    users_path: str | os.PathLike[str] | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    item_text_fields: Sequence[str] = (),
    item_categorical_fields: Sequence[str] = (),
    user_profile_fields: Sequence[str] = (),
    user_text_field: str | None = None,
    file_format: str = "auto",
    timestamp_unit: str = "s",
    strict: bool = True,
    name: str = "custom",
    encoding: str = "utf-8",
) -> RecDataset:
    """Reads an interaction log (and optional item/user files) in CSV, TSV, Parquet or JSONL.

    Args:
        interactions_path: File with user, item and timestamp columns (optional rating, event,
            scenario).
        items_path: File with one row per item (``item_id`` + fields). ``None``: the catalog is
            the interacted items, with empty text fields (counted as ``empty_text`` when
            ``item_text_fields`` are given).
        users_path: File with one row per user. ``None``: users frame holds only ids.
        columns: Canonical name -> column name in the files, e.g. ``{"item_id": "movieId"}``;
            applied to every file that has the source column.
        item_text_fields: Canonical item columns holding text.
        item_categorical_fields: Canonical item columns that are categorical (``"|"``-joined
            when multi-valued).
        user_profile_fields: Canonical user columns usable as features.
        user_text_field: Canonical user column with free text.
        file_format: ``"auto"`` (from each file's extension) or one of ``FORMATS``.
        timestamp_unit: Unit of numeric timestamps (``"s"``, ``"ms"``, ``"us"``, ``"ns"``);
            ISO-8601 strings (UTC when they carry no offset) are accepted too. Stored as int64
            unix seconds (floored).
        strict: ``True`` raises at the first problem; ``False`` drops and counts bad rows.
        name: ``RecDataset.name``.
        encoding: Text encoding of CSV/TSV/JSONL files.

    Returns:
        The canonical data set; ``report`` lists what was dropped or noticed.

    Raises:
        DataError: Naming the file, line (text) or 1-based row (Parquet) and column: missing
            required column, column in ``columns`` that no file has, malformed row, empty id,
            unparsable timestamp or rating, duplicate item/user row, unknown item id (the last
            five only when ``strict=True``).

    Example:
        >>> ds = read_tabular("ratings.csv", "movies.csv",
        ...                   columns={"user_id": "userId", "item_id": "movieId"},
        ...                   item_text_fields=("title",))  # doctest: +SKIP
    """
    log = IssueLog(strict)
    inter = load_table(interactions_path, file_format, log, encoding)
    items = None if items_path is None else load_table(items_path, file_format, log, encoding)
    users = None if users_path is None else load_table(users_path, file_format, log, encoding)
    mapping = dict(columns or {})
    apply_mapping({"interactions": inter, "items": items, "users": users}, mapping)
    return build_dataset(
        name,
        inter,
        items,
        users,
        log=log,
        mapping=mapping,
        item_text_fields=item_text_fields,
        item_categorical_fields=item_categorical_fields,
        user_profile_fields=user_profile_fields,
        user_text_field=user_text_field,
        timestamp_unit=timestamp_unit,
    )
