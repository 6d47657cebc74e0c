"""The shared table of every reader: one file as strings, plus the column-mapping helpers.

Every reader in ``tfrec_llm.data.readers`` loads each file as a `RawTable` (every value a
``str``, each row's line number or 1-based row number in ``LOC``), renames the file's columns to
canonical names and checks the required ones before converting them (`canonical`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tfrec_llm.data import schema
from tfrec_llm.errors import DataError

LOC = "__loc__"  # internal column: line number (text) or 1-based row number (Parquet)


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
                f"{path} is not valid {encoding} text ({err}); save it as {encoding} "
                "(Python: or pass encoding=...)"
            ) from err
        text = data.decode(fallback)
    return text.removeprefix("\ufeff")


def check_header(path: str, names: Sequence[str]) -> None:
    """Raises DataError if a header repeats a column name."""
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise DataError(f"{path}: the header repeats column names {repeated}; rename them.")


def cell_text(value: Any) -> str:
    """One cell of a JSON record or Parquet column as text (lists ``|``-joined, None -> "")."""
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
        return schema.MULTI_VALUE_SEP.join(cell_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def drop_rows(table: RawTable, bad: np.ndarray) -> None:
    """Removes the rows flagged in ``bad`` (``[n]`` bool) from ``table.frame``, in place."""
    if bad.any():
        table.frame = table.frame.loc[~bad].reset_index(drop=True)


def rename_columns(table: RawTable, renames: Mapping[str, str]) -> None:
    """Renames file columns to canonical names, remembering the file's names for messages."""
    table.frame = table.frame.rename(columns=dict(renames))
    table.source_names.update({c: s for s, c in renames.items()})


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
                f"data.columns maps {canonical!r} -> {source!r}, but no input file has a column "
                f"{source!r}. Available columns: {available}."
            )
    for table in present.values():
        renames = {s: c for c, s in columns.items() if s in table.frame.columns and s != c}
        clash = [c for c in renames.values() if c in table.frame.columns and c not in renames]
        table.frame = table.frame.drop(columns=clash)
        rename_columns(table, renames)


def require(table: RawTable, names: Sequence[str], mapping: Mapping[str, str]) -> None:
    """Raises DataError naming the file if a required canonical column is absent."""
    for name in names:
        if name not in table.frame.columns:
            if name in mapping:
                what, fix = f"{name!r} (column {mapping[name]!r} per data.columns)", "Fix data.columns."
            else:
                what = repr(name)
                fix = (
                    f"Map one in the config, data.columns: {{{name}: <column in the file>}} "
                    f"(Python: columns={{{name!r}: ...}})."
                )
            raise DataError(
                f"{table.path}: missing required column {what}; available columns: {table.columns()}. {fix}"
            )
