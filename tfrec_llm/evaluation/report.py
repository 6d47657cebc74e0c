"""Result records: a markdown table for humans, a JSON file for machines.

A record is one number: ``{"model", "protocol", "split", "metric", "k", "value"}``, as
returned by `tfrec_llm.evaluation.protocols.evaluate_all`.

Example:
    >>> records = [
    ...     {"model": "MostPop", "protocol": "loo", "split": "test", "metric": "ndcg",
    ...      "k": 10, "value": 0.0123456},
    ... ]
    >>> print(records_to_table(records))
    | model | A ndcg@10 |
    |---|---|
    | MostPop | 0.0123 |
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tfrec_llm import atomic_io
from tfrec_llm.errors import DataError

RECORD_KEYS = ("model", "protocol", "split", "metric", "k", "value")
"""Keys of every record, in the order they are written."""

PROTOCOL_LETTERS = {"loo": "A", "cold-items": "B", "cold-users": "C"}
"""Short column prefixes: the protocol letters of docs/evaluation.md."""

_SPLIT_ORDER = ("valid", "test")
_METRIC_ORDER = ("ndcg", "recall", "hr")
_MISSING = "-"


def records_to_table(records: Iterable[Mapping[str, Any]], split: str | None = None) -> str:
    """Formats records as a GitHub markdown table, one row per model.

    Columns are ``"<protocol letter> <metric>@<k>"`` (e.g. ``"A ndcg@10"``; an unknown protocol
    keeps its name), ordered by protocol (A, B, C, then others by name), then ``k``, then
    metric (ndcg, recall, hr, then others by name). When the records hold more than one split,
    the split name joins the column (``"A test ndcg@10"``) and orders after the protocol.
    Rows keep the order in which models first appear. Values have 4 decimals; a missing cell
    is ``-``.

    Args:
        records: Result records (see `RECORD_KEYS`).
        split: Keep only records of this split (e.g. ``"test"``); None keeps all.

    Returns:
        The table, lines joined by ``"\\n"``, without a trailing newline.

    Raises:
        DataError: If a record is malformed, two records give the same cell different values,
            or no record is left.
    """
    checked = [_check_record(record, i) for i, record in enumerate(records)]
    if split is not None:
        checked = [record for record in checked if record["split"] == split]
    if not checked:
        raise DataError(
            "records_to_table: no records to show"
            + ("" if split is None else f" for split {split!r}")
            + "; pass the output of evaluate_all."
        )
    show_split = len({record["split"] for record in checked}) > 1

    models: list[str] = []
    cells: dict[tuple[str, tuple[Any, ...]], float] = {}
    for record in checked:
        if record["model"] not in models:
            models.append(record["model"])
        column = (record["protocol"], record["split"], record["k"], record["metric"])
        key = (record["model"], column)
        if key in cells and cells[key] != record["value"]:
            raise DataError(
                f"records give two values for model {record['model']!r}, protocol "
                f"{record['protocol']!r}, split {record['split']!r}, {record['metric']}@"
                f"{record['k']}: {cells[key]} and {record['value']}; keep one run per table."
            )
        cells[key] = record["value"]

    columns = sorted({column for _, column in cells}, key=_column_sort_key)
    header = ["model"] + [_column_label(column, show_split) for column in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in models:
        row = [model]
        for column in columns:
            value = cells.get((model, column))
            row.append(_MISSING if value is None else f"{value:.4f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_json(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes records to a JSON file atomically (temporary file + rename).

    The parent folder is created if needed. A reader never sees a half-written file: the old
    file, if any, stays until the new one is complete.

    Args:
        records: Result records (see `RECORD_KEYS`); values must be finite.
        path: Destination ``.json`` file.

    Raises:
        DataError: If a record is malformed or a value is not finite.
    """
    checked = [_check_record(record, i) for i, record in enumerate(records)]
    for i, record in enumerate(checked):
        if not math.isfinite(record["value"]):
            raise DataError(f"record {i} has value {record['value']}; JSON results must be finite numbers.")
    atomic_io.write_json(path, checked, indent=2, allow_nan=False)


def read_json(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Reads records written by `write_json`.

    Args:
        path: A ``.json`` file holding a list of records.

    Returns:
        The records, each with exactly the keys of `RECORD_KEYS`.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DataError: If the file is not JSON or not a list of valid records.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error}); write it with write_json.") from error
    if not isinstance(loaded, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(loaded).__name__}.")
    try:
        return [_check_record(record, i) for i, record in enumerate(loaded)]
    except DataError as error:
        raise DataError(f"{path}: {error}") from error


def _check_record(record: Any, position: int) -> dict[str, Any]:
    """Validates one record and returns a plain copy (str/int/float values, key order fixed)."""
    if not isinstance(record, Mapping):
        raise DataError(f"record {position} is a {type(record).__name__}, expected a mapping.")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise DataError(f"record {position} lacks keys {missing}; every record needs {list(RECORD_KEYS)}.")
    k = record["k"]
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise DataError(f"record {position} has k={k!r}; expected a positive integer.")
    value = record["value"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DataError(f"record {position} has value={value!r}; expected a number.")
    out: dict[str, Any] = {key: str(record[key]) for key in ("model", "protocol", "split", "metric")}
    out["k"] = int(k)
    out["value"] = float(value)
    return out


def _column_sort_key(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """Orders (protocol, split, k, metric) columns: A, B, C, valid/test, k, ndcg/recall/hr."""
    protocol, split, k, metric = column
    return (
        _order(protocol, tuple(PROTOCOL_LETTERS)),
        _order(split, _SPLIT_ORDER),
        k,
        _order(metric, _METRIC_ORDER),
    )


def _order(value: str, known: tuple[str, ...]) -> tuple[int, str]:
    """Known values by their position, unknown ones after them by name."""
    return (known.index(value), "") if value in known else (len(known), value)


def _column_label(column: tuple[Any, ...], show_split: bool) -> str:
    """``"A ndcg@10"`` or, with several splits, ``"A test ndcg@10"``."""
    protocol, split, k, metric = column
    prefix = PROTOCOL_LETTERS.get(protocol, protocol)
    middle = f" {split}" if show_split else ""
    return f"{prefix}{middle} {metric}@{k}"
