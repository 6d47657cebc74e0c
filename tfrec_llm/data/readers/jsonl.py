"""JSON Lines files: one JSON object per line; other lines are ``malformed_row``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from tfrec_llm.data.readers.issues import IssueLog
from tfrec_llm.data.readers.table import LOC, RawTable, cell_text, decode


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
        {name: pd.Series([cell_text(r.get(name)) for r in records], dtype="str") for name in names}
    )
    frame[LOC] = np.asarray(locs, dtype=np.int64)
    table.frame = frame
    return table
