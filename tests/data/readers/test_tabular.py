"""Tests for tfrec_llm.data.readers.tabular.read_tabular on small files written in tmp_path."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data.readers import read_tabular
from tfrec_llm.errors import DataError

MAPPING = {"user_id": "uid", "item_id": "iid", "timestamp": "ts", "rating": "stars"}


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def items_csv(tmp_path):
    return _write(
        tmp_path / "items.csv",
        'iid,title,genres\n10,"Alpha, the movie",Drama|War\n11,Beta,Comedy\n12,,\n',
    )


def test_reads_csv_with_mapping_iso_and_unix_times(tmp_path, items_csv):
    inter = _write(
        tmp_path / "ratings.csv",
        "uid,iid,ts,stars,extra\n"
        "2,10,100,4,x\n"
        "1,11,2024-01-01T00:00:00Z,5,y\n"
        "1,10,2024-01-01 00:00:01+01:00,3.5,z\n",
    )
    ds = read_tabular(
        inter,
        items_csv,
        columns=MAPPING,
        item_text_fields=("title", "genres"),
        item_categorical_fields=("genres",),
    )
    assert ds.name == "custom"
    assert ds.interactions.columns.tolist() == ["user_id", "item_id", "timestamp", "rating"]
    assert ds.interactions["user_id"].tolist() == ["2", "1", "1"]
    # 2024-01-01T00:00:00Z = 1704067200; 00:00:01+01:00 = 1704067201 - 3600.
    assert ds.interactions["timestamp"].tolist() == [100, 1704067200, 1704063601]
    assert ds.interactions["timestamp"].dtype == np.int64
    assert ds.interactions["rating"].tolist() == [4.0, 5.0, 3.5]
    assert ds.items["item_id"].tolist() == ["10", "11", "12"]
    assert ds.items["title"].tolist() == ["Alpha, the movie", "Beta", ""]
    assert ds.items["genres"].tolist() == ["Drama|War", "Comedy", ""]
    assert ds.users["user_id"].tolist() == ["1", "2"]  # natural order
    assert ds.item_text_fields == ("title", "genres")
    # Item 12 has no text at all: kept, counted.
    assert dict(ds.report.counts) == {"empty_text": 1}
    assert "items.csv, line 4: item '12' has empty text" in ds.report.examples["empty_text"][0]


def test_timestamp_units_floor_to_seconds(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp\n1,1,1500\n1,2,2999.5\n")
    ds = read_tabular(inter, timestamp_unit="ms")
    assert ds.interactions["timestamp"].tolist() == [1, 2]
    with pytest.raises(DataError, match=r"timestamp_unit='h' is not supported"):
        read_tabular(inter, timestamp_unit="h")


MALFORMED = "user_id,item_id,timestamp\n1,10,100\n1,11\n2,10,300\n"


def test_malformed_csv_row_strict_raises_with_file_and_line(tmp_path):
    inter = _write(tmp_path / "bad.csv", MALFORMED)
    with pytest.raises(
        DataError,
        match=r"bad\.csv, line 3: malformed row: expected 3 fields "
        r"separated by ',', found 2",
    ):
        read_tabular(inter)


def test_malformed_csv_row_non_strict_drops_counts_and_warns_once(tmp_path, caplog):
    inter = _write(tmp_path / "bad.csv", MALFORMED)
    with caplog.at_level(logging.WARNING, logger="tfrec_llm.data.readers"):
        ds = read_tabular(inter, strict=False)
    assert ds.interactions["timestamp"].tolist() == [100, 300]  # not shifted
    assert ds.report.counts["malformed_row"] == 1
    assert ds.report.num_dropped == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 1 rows (malformed_row=1)" in warnings[0].getMessage()


def test_quoted_csv_fields_may_hold_commas_and_newlines(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp\n1,10,1\n1,11,2\n")
    items = _write(
        tmp_path / "i.csv",
        'item_id,title\n10,"Two\nlines, one comma"\n11,"He said ""hi"""\n11,x,y\n',
    )
    with pytest.raises(DataError, match=r"i\.csv, line 5: malformed row: expected 2 fields"):
        read_tabular(inter, items, item_text_fields=("title",))
    ds = read_tabular(inter, items, item_text_fields=("title",), strict=False)
    assert ds.items["title"].tolist() == ["Two\nlines, one comma", 'He said "hi"']


def test_unknown_column_in_mapping(tmp_path):
    inter = _write(tmp_path / "r.csv", "uid,iid,ts\n1,10,1\n")
    with pytest.raises(
        DataError,
        match=r"columns maps 'timestamp' -> 'time', but no input file "
        r"has a column 'time'\. Available columns: .*r\.csv: "
        r"\['uid', 'iid', 'ts'\]",
    ):
        read_tabular(inter, columns={"user_id": "uid", "item_id": "iid", "timestamp": "time"})


def test_missing_required_column_lists_available(tmp_path):
    inter = _write(tmp_path / "r.csv", "uid,iid,ts\n1,10,1\n")
    with pytest.raises(
        DataError,
        match=r"r\.csv: missing required column 'timestamp'; "
        r"available columns: \['uid', 'iid', 'ts'\]\. Map one in the config, "
        r"data\.columns: \{timestamp: <column in the file>\} \(Python: columns=\{'timestamp': \.\.\.\}\)\.",
    ):
        read_tabular(inter, columns={"user_id": "uid", "item_id": "iid"})
    items = _write(tmp_path / "i.csv", "item_id,name\n10,x\n")
    with pytest.raises(DataError, match=r"i\.csv: missing required column 'title'"):
        read_tabular(
            inter,
            items,
            columns={"user_id": "uid", "item_id": "iid", "timestamp": "ts"},
            item_text_fields=("title",),
        )


def test_unparsable_timestamp(tmp_path):
    inter = _write(tmp_path / "r.csv", "uid,iid,ts\n1,10,100\n1,11,yesterday\n2,10,\n")
    mapping = {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}
    with pytest.raises(
        DataError,
        match=r"r\.csv, line 3, column 'ts' \(timestamp\): unparsable "
        r"timestamp 'yesterday'; expected unix time in 's' or an "
        r"ISO-8601 date\. \(2 problem\(s\) in this file",
    ):
        read_tabular(inter, columns=mapping)
    ds = read_tabular(inter, columns=mapping, strict=False)
    assert dict(ds.report.counts) == {"bad_timestamp": 2}
    assert ds.interactions["timestamp"].tolist() == [100]


def test_unparsable_rating_and_empty_id(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp,rating\n1,10,1,4\n ,10,2,3\n1,11,3,five\n")
    with pytest.raises(DataError, match=r"r\.csv, line 3, column 'user_id': empty id"):
        read_tabular(inter)
    ds = read_tabular(inter, strict=False)
    assert dict(ds.report.counts) == {"empty_id": 1, "bad_rating": 1}
    assert ds.report.examples["bad_rating"] == (
        f"{inter}, line 4, column 'rating': unparsable rating 'five'; expected a number",
    )


def test_unknown_item_in_interactions(tmp_path, items_csv):
    inter = _write(tmp_path / "r.csv", "uid,iid,ts\n1,10,1\n1,99,2\n")
    mapping = {"user_id": "uid", "item_id": "iid", "timestamp": "ts"}
    with pytest.raises(
        DataError,
        match=r"r\.csv, line 3, column 'iid' \(item_id\): item id '99' "
        r"is not in .*items\.csv",
    ):
        read_tabular(inter, items_csv, columns=mapping)
    ds = read_tabular(inter, items_csv, columns=mapping, strict=False)
    assert ds.report.counts["unknown_item"] == 1
    assert ds.interactions["item_id"].tolist() == ["10"]
    assert ds.items["item_id"].tolist() == ["10", "11", "12"]  # catalog keeps unrated items


def test_duplicate_item_rows(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp\n1,10,1\n")
    items = _write(tmp_path / "i.csv", "item_id,title\n10,first\n10,second\n")
    with pytest.raises(DataError, match=r"i\.csv, line 3, column 'item_id': duplicate id '10'"):
        read_tabular(inter, items, item_text_fields=("title",))
    ds = read_tabular(inter, items, item_text_fields=("title",), strict=False)
    assert ds.items["title"].tolist() == ["first"]
    assert ds.report.counts["duplicate_item"] == 1


def test_missing_items_file_builds_catalog_with_empty_text(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp\n1,10,1\n2,9,2\n")
    ds = read_tabular(inter, item_text_fields=("title",))
    assert ds.items["item_id"].tolist() == ["9", "10"]
    assert ds.items["title"].tolist() == ["", ""]
    assert dict(ds.report.counts) == {"empty_text": 2}
    assert ds.report.num_dropped == 0


def test_users_file_profiles_and_missing_profiles(tmp_path):
    inter = _write(tmp_path / "r.csv", "user_id,item_id,timestamp\n1,10,1\n2,10,2\n")
    users = _write(tmp_path / "u.csv", "user_id,age,bio\n1,30,likes films\n")
    ds = read_tabular(inter, users_path=users, user_profile_fields=("age",), user_text_field="bio")
    assert ds.users.to_dict("list") == {
        "user_id": ["1", "2"],
        "age": ["30", ""],
        "bio": ["likes films", ""],
    }
    assert ds.report.counts["missing_user_profile"] == 1
    assert ds.user_text_field == "bio"


def test_reads_jsonl_and_reports_bad_lines(tmp_path):
    lines = [
        json.dumps({"user": 1, "item": 10, "time": "2024-01-01T00:00:00Z", "r": 4.0}),
        "{not json",
        json.dumps([1, 2]),
        "",
        json.dumps({"user": 2, "item": 11, "time": 100, "r": None}),
    ]
    inter = _write(tmp_path / "log.jsonl", "\n".join(lines) + "\n")
    mapping = {"user_id": "user", "item_id": "item", "timestamp": "time", "rating": "r"}
    with pytest.raises(DataError, match=r"log\.jsonl, line 2: malformed row: invalid JSON"):
        read_tabular(inter, columns=mapping)
    ds = read_tabular(inter, columns=mapping, strict=False)
    assert dict(ds.report.counts) == {"malformed_row": 2, "bad_rating": 1}
    assert "line 3: malformed row: a JSON list, not an object" in ds.report.examples["malformed_row"][1]
    assert ds.interactions.to_dict("list") == {
        "user_id": ["1"],
        "item_id": ["10"],
        "timestamp": [1704067200],
        "rating": [4.0],
    }


def test_reads_parquet_with_row_numbers(tmp_path):
    path = str(tmp_path / "log.parquet")
    pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "item_id": ["a", "b", ""],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    ).to_parquet(path)
    with pytest.raises(DataError, match=r"log\.parquet, row 3, column 'item_id': empty id"):
        read_tabular(path)
    ds = read_tabular(path, strict=False)
    assert ds.interactions["user_id"].tolist() == ["1", "2"]
    assert ds.interactions["timestamp"].tolist() == [1704067200, 1704153600]


def test_file_format_errors(tmp_path):
    path = _write(tmp_path / "log.txt", "user_id,item_id,timestamp\n1,1,1\n")
    with pytest.raises(
        DataError,
        match=r"cannot tell the format of .*log\.txt from its "
        r"extension '\.txt'; pass file_format=",
    ):
        read_tabular(path)
    assert len(read_tabular(path, file_format="csv").interactions) == 1
    with pytest.raises(DataError, match=r"file_format='xml' is not supported"):
        read_tabular(path, file_format="xml")
    with pytest.raises(DataError, match=r"file not found: .*nope\.csv"):
        read_tabular(str(tmp_path / "nope.csv"))


def test_tsv_and_crlf_line_endings(tmp_path):
    path = _write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\r\n1\t10\t5\r\n")
    ds = read_tabular(path)
    assert ds.interactions.to_dict("list") == {
        "user_id": ["1"],
        "item_id": ["10"],
        "timestamp": [5],
    }


def test_repeated_header_names_and_byte_order_mark(tmp_path):
    path = _write(tmp_path / "r.csv", "user_id,item_id,timestamp,item_id\n1,1,1,2\n")
    with pytest.raises(DataError, match=r"r\.csv: the header repeats column names \['item_id'\]"):
        read_tabular(path)
    path = _write(tmp_path / "bom.csv", "\ufeffuser_id,item_id,timestamp\n1,1,1\n")
    assert read_tabular(path).interactions["user_id"].tolist() == ["1"]
