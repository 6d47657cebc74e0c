"""Tests for tfrec_llm.data.readers.issues.IssueLog: strict raises the earliest row, lax counts."""

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.readers.issues import IssueLog
from tfrec_llm.data.readers.table import LOC, RawTable
from tfrec_llm.errors import DataError


def _table(path="f.csv"):
    return RawTable(path, pd.DataFrame({"user_id": ["", "a", ""], LOC: np.array([2, 3, 4])}), "line")


def _log(strict):
    log = IssueLog(strict)
    table = _table()
    rows = table.frame
    log.add("bad_timestamp", table, "user_id", rows.iloc[[2]], ["x"], "unparsable {value!r}")
    log.add("empty_id", table, "user_id", rows.iloc[[0, 2]], ["", ""], "empty id")
    log.note("empty_text", 3, ["m1", "m2", "m3", "m4", "m5", "m6"])
    return log


def test_strict_raises_the_earliest_line_of_the_file_with_the_total():
    with pytest.raises(
        DataError,
        match=r"^f\.csv, line 2, column 'user_id': empty id\. \(3 problem\(s\) in this file;",
    ):
        _log(strict=True).raise_first("f.csv")


def test_strict_ignores_other_files_and_lax_never_raises():
    _log(strict=True).raise_first("other.csv")
    _log(strict=False).raise_first("f.csv")


def test_report_counts_per_reason_and_keeps_five_examples():
    report = _log(strict=False).report()
    assert report.counts == {"bad_timestamp": 1, "empty_id": 2, "empty_text": 3}
    assert report.examples["bad_timestamp"] == ("f.csv, line 4, column 'user_id': unparsable 'x'",)
    assert len(report.examples["empty_text"]) == 5


def test_empty_rows_record_nothing():
    log = IssueLog(strict=True)
    table = _table()
    log.add("empty_id", table, "user_id", table.frame.iloc[[]], [], "empty id")
    log.raise_first("f.csv")
    assert log.report().counts == {}
