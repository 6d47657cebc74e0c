"""Bad input files of the generic readers (issue 13): each gets one clear DataError, or is
dropped and counted with strict=False, the same way in every format."""

import json

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.config import load_config
from tfrec_llm.data.readers import read_tabular
from tfrec_llm.errors import DataError
from tfrec_llm.experiments.prepare import load_dataset

HEADER = "user_id,item_id,timestamp\n"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_exact_duplicate_interactions_are_an_error_when_strict(tmp_path):
    log = _write(tmp_path / "log.csv", HEADER + "1,a,10\n2,a,11\n1,a,10\n1,b,12\n")
    with pytest.raises(
        DataError,
        match=r"/log\.csv, line 4: duplicate interaction: user '1', item 'a', timestamp 10 repeats "
        r"line 2\. \(1 problem\(s\) in this file; .*--set data\.strict=false",
    ):
        read_tabular(str(log))


def test_exact_duplicate_interactions_are_dropped_and_counted_when_lax(tmp_path):
    # rows 2/4 repeat; row 5 has the same user and item at another time (kept); rows 6/7 differ
    # only by event (kept: a view and a purchase are two interactions).
    text = "user_id,item_id,timestamp,event\n1,a,10,view\n2,a,11,view\n1,a,10,view\n1,a,20,view\n"
    text += "3,b,5,view\n3,b,5,buy\n1,a,10,view\n"
    ds = read_tabular(str(_write(tmp_path / "log.csv", text)), strict=False)
    assert ds.report.counts == {"duplicate_interaction": 2}
    assert len(ds.interactions) == 5
    assert ds.report.examples["duplicate_interaction"][0].endswith("repeats line 2")
    assert sorted(ds.interactions.loc[ds.interactions.user_id == "1", "timestamp"]) == [10, 20]


def _nan_files(tmp_path, kind):
    """A log whose first row has a missing user id, spelled as each format writes one."""
    if kind in ("csv NaN", "csv nan", "csv null", "csv empty"):
        spelling = {"csv NaN": "NaN", "csv nan": "nan", "csv null": "null", "csv empty": ""}[kind]
        return _write(tmp_path / "log.csv", HEADER + f"{spelling},a,10\n1,b,11\n2,a,12\n")
    if kind == "tsv NaN":
        return _write(tmp_path / "log.tsv", "user_id\titem_id\ttimestamp\nNaN\ta\t10\n1\tb\t11\n2\ta\t12\n")
    if kind in ("jsonl null", "jsonl 'NaN'", "jsonl NaN"):
        first = {"jsonl null": "null", "jsonl 'NaN'": '"NaN"', "jsonl NaN": "NaN"}[kind]
        rows = [f'{{"user_id": {first}, "item_id": "a", "timestamp": 10}}']
        rows += [
            json.dumps({"user_id": u, "item_id": i, "timestamp": t})
            for u, i, t in (("1", "b", 11), ("2", "a", 12))
        ]
        return _write(tmp_path / "log.jsonl", "\n".join(rows) + "\n")
    frame = pd.DataFrame({"user_id": [None, "1", "2"], "item_id": ["a", "b", "a"], "timestamp": [10, 11, 12]})
    if kind == "parquet NaN":
        frame["user_id"] = [np.nan, 1.0, 2.0]
    frame.to_parquet(tmp_path / "log.parquet")
    return tmp_path / "log.parquet"


KINDS = ["csv NaN", "csv nan", "csv null", "csv empty", "tsv NaN", "jsonl null", "jsonl 'NaN'", "jsonl NaN"]


@pytest.mark.parametrize("kind", [*KINDS, "parquet None", "parquet NaN"])
def test_a_missing_user_id_is_handled_the_same_in_every_format(tmp_path, kind):
    path = str(_nan_files(tmp_path, kind))
    with pytest.raises(DataError, match=r"(line|row) [12], column 'user_id': (empty id|missing id)"):
        read_tabular(path)
    ds = read_tabular(path, strict=False)
    assert ds.report.counts == {"empty_id": 1}
    assert sorted(ds.interactions.user_id) == ["1", "2"]  # 'NaN' did not become a user


@pytest.mark.parametrize("name", ["log.csv", "log.tsv", "log.jsonl"])
def test_an_empty_file_is_said_to_be_empty_not_blamed_on_the_columns(tmp_path, name):
    path = str(_write(tmp_path / name, "\n" if name.endswith("jsonl") else ""))
    for strict in (True, False):
        with pytest.raises(DataError) as err:
            read_tabular(path, strict=strict)
        assert str(err.value).startswith(f"{path}: no interactions to read (it is empty).")
        assert "columns" not in str(err.value).split("Expected")[0]


def test_an_empty_items_file_is_named(tmp_path):
    log = _write(tmp_path / "log.csv", HEADER + "1,a,10\n")
    items = _write(tmp_path / "items.csv", "")
    with pytest.raises(DataError, match=r"items\.csv: no items to read \(it is empty\)"):
        read_tabular(str(log), str(items))


def test_a_header_only_file_is_one_sentence(tmp_path):
    path = str(_write(tmp_path / "log.csv", HEADER))
    with pytest.raises(
        DataError,
        match=r"log\.csv: no usable interactions after cleaning: the file has a header but no data rows\.$",
    ):
        read_tabular(path, strict=False)


def test_every_row_dropped_is_one_sentence_with_the_reasons(tmp_path):
    path = str(_write(tmp_path / "log.csv", HEADER + ",a,10\n2,b,soon\n3\n"))
    with pytest.raises(
        DataError,
        match=r"log\.csv: no usable interactions after cleaning: every row was dropped "
        r"\(malformed_row=1, empty_id=1, bad_timestamp=1; ",
    ):
        read_tabular(path, strict=False)


def test_strict_errors_name_the_cli_spelling(tmp_path):
    path = str(_write(tmp_path / "log.csv", HEADER + "1,a,yesterday\n"))
    with pytest.raises(
        DataError, match=r"--set data\.strict=false \(config: data\.strict: false; Python: strict=False\)"
    ):
        read_tabular(path)


def test_a_csv_read_as_jsonl_names_the_line_not_the_columns(tmp_path):
    log = _write(tmp_path / "log.jsonl", '{"user_id": "1", "item_id": "a", "timestamp": 1}\n')
    items = _write(tmp_path / "items.txt", "item_id,title\na,A\n")
    with pytest.raises(DataError, match=r"items\.txt, line 1: malformed row: invalid JSON"):
        read_tabular(str(log), str(items), file_format="jsonl")
    with pytest.raises(
        DataError, match=r"items\.txt: no items to read \(none of its 2 non-blank lines could be read\)"
    ):
        read_tabular(str(log), str(items), file_format="jsonl", strict=False)


def test_the_format_is_chosen_per_file_by_extension(tmp_path, caplog):
    log = _write(tmp_path / "log.jsonl", '{"user_id": "1", "item_id": "a", "timestamp": 1}\n')
    items = _write(tmp_path / "items.csv", "item_id,title\na,Alpha\nb,Beta\n")
    users = _write(tmp_path / "users.txt", '{"user_id": "1", "age": "30"}\n')  # no known extension
    ds = read_tabular(
        str(log),
        str(items),
        str(users),
        item_text_fields=("title",),
        user_profile_fields=("age",),
        default_format="jsonl",
    )
    assert list(ds.items.title) == ["Alpha", "Beta"] and list(ds.users.age) == ["30"]
    assert any("items.csv: reading it as csv" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match=r"default_format='xml' is not supported"):
        read_tabular(str(log), default_format="xml")


def test_data_source_jsonl_with_a_csv_items_file_reads_both(tmp_path):
    log = _write(tmp_path / "log.jsonl", '{"user_id": "1", "item_id": "a", "timestamp": 1}\n')
    items = _write(tmp_path / "items.csv", "item_id,title\na,Alpha\n")
    cfg = load_config(
        None,
        [
            "data.source=jsonl",
            f"data.path={log}",
            f"data.items_path={items}",
            "data.item_text_fields=[title]",
        ],
    )
    assert list(load_dataset(cfg.data).items.title) == ["Alpha"]


def test_column_errors_name_the_config_spelling(tmp_path):
    log = _write(tmp_path / "log.csv", "uid,item_id,timestamp\n1,a,10\n")
    with pytest.raises(
        DataError,
        match=r"log\.csv: missing required column 'user_id'; available columns: \['uid', 'item_id', 'timestamp'\]\. "
        r"Map one in the config, data\.columns: \{user_id: <column in the file>\} \(Python: columns=",
    ):
        read_tabular(str(log))
    with pytest.raises(
        DataError, match=r"^data\.columns maps 'user_id' -> 'user', but no input file has a column 'user'"
    ):
        read_tabular(str(log), columns={"user_id": "user"})


def test_a_file_in_another_encoding_says_how_to_save_it(tmp_path):
    log = tmp_path / "log.csv"
    log.write_bytes((HEADER + "1,caf\xe9,10\n").encode("latin-1"))
    with pytest.raises(
        DataError,
        match=r"log\.csv is not valid utf-8 text \(.*\); save it as utf-8 \(Python: or pass encoding=",
    ):
        read_tabular(str(log))
