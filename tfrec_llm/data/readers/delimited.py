"""Delimited text files: CSV/TSV with a header (RFC 4180 quoting) and unquoted separator files.

Lines with the wrong number of fields are recorded as ``malformed_row`` in the issue log.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tfrec_llm.data.readers.issues import IssueLog
from tfrec_llm.data.readers.table import LOC, RawTable, check_header, decode


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
        marker = sep if len(sep) == 1 else next((c for c in "\t\x1f\x1e\x1d\x01" if c not in joined), None)
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
        frame = pd.DataFrame([line.split(sep) for line in lines] or None, columns=columns, dtype=str)
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
