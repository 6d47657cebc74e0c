"""Parquet files: every column converted to text, rows numbered from 1."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfrec_llm.data.readers.table import LOC, RawTable, cell_text
from tfrec_llm.errors import DataError


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
            text = pd.Series([cell_text(v) for v in series.to_numpy(dtype=object)])
        frame[str(name)] = text.astype("str").to_numpy()
    frame = frame.astype("str")
    frame[LOC] = np.arange(1, len(raw) + 1, dtype=np.int64)
    return RawTable(path, frame.reset_index(drop=True), "row")
