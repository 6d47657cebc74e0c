"""Tests for tfrec_llm.evaluation.report: markdown table and atomic JSON records."""

import json

import numpy as np
import pytest

from tfrec_llm.errors import DataError
from tfrec_llm.evaluation.report import read_json, records_to_table, write_json


def _record(model, protocol, metric, k, value, split="test"):
    return {
        "model": model,
        "protocol": protocol,
        "split": split,
        "metric": metric,
        "k": k,
        "value": value,
    }


def test_table_has_one_row_per_model_and_stable_column_order():
    # Records deliberately shuffled: columns must come out A, B, C; k ascending; ndcg, recall.
    records = [
        _record("MostPop", "cold-users", "ndcg", 10, 0.3),
        _record("Random", "loo", "recall", 10, 0.01),
        _record("Random", "loo", "ndcg", 10, 0.004),
        _record("MostPop", "loo", "ndcg", 50, 0.123456),
        _record("MostPop", "loo", "ndcg", 10, 0.05),
        _record("MostPop", "cold-items", "ndcg", 10, 0.2),
    ]
    assert records_to_table(records) == "\n".join(
        [
            "| model | A ndcg@10 | A recall@10 | A ndcg@50 | B ndcg@10 | C ndcg@10 |",
            "|---|---|---|---|---|---|",
            "| MostPop | 0.0500 | - | 0.1235 | 0.2000 | 0.3000 |",
            "| Random | 0.0040 | 0.0100 | - | - | - |",
        ]
    )


def test_table_filters_by_split_and_labels_several_splits():
    records = [
        _record("MostPop", "loo", "ndcg", 10, 0.1, split="test"),
        _record("MostPop", "loo", "ndcg", 10, 0.2, split="valid"),
    ]
    assert records_to_table(records, split="test").splitlines()[0] == "| model | A ndcg@10 |"
    assert records_to_table(records, split="test").splitlines()[2] == "| MostPop | 0.1000 |"
    # Both splits: the split joins the label, valid before test.
    assert records_to_table(records).splitlines()[0] == ("| model | A valid ndcg@10 | A test ndcg@10 |")


def test_unknown_protocol_keeps_its_name_after_the_known_ones():
    records = [
        _record("M", "my-protocol", "hr", 10, 0.5),
        _record("M", "loo", "hr", 10, 0.25),
    ]
    assert records_to_table(records).splitlines()[0] == "| model | A hr@10 | my-protocol hr@10 |"


def test_same_record_twice_is_fine_but_conflicting_values_are_rejected():
    record = _record("M", "loo", "ndcg", 10, 0.5)
    assert records_to_table([record, dict(record)]).splitlines()[2] == "| M | 0.5000 |"
    with pytest.raises(DataError, match=r"two values for model 'M'.*ndcg@10: 0.5 and 0.6"):
        records_to_table([record, {**record, "value": 0.6}])


def test_table_errors():
    with pytest.raises(DataError, match="no records to show for split 'test'"):
        records_to_table([_record("M", "loo", "ndcg", 10, 0.5, split="valid")], split="test")
    with pytest.raises(DataError, match=r"record 0 lacks keys \['value'\]"):
        records_to_table([{"model": "M", "protocol": "loo", "split": "t", "metric": "n", "k": 1}])
    with pytest.raises(DataError, match="record 0 has k=0; expected a positive integer"):
        records_to_table([_record("M", "loo", "ndcg", 0, 0.5)])
    with pytest.raises(DataError, match="record 0 has value='x'; expected a number"):
        records_to_table([_record("M", "loo", "ndcg", 10, "x")])
    with pytest.raises(DataError, match="record 0 is a list, expected a mapping"):
        records_to_table([[1, 2]])


def test_json_round_trip_converts_numpy_scalars(tmp_path):
    records = [
        _record("MostPop", "loo", "ndcg", np.int64(10), np.float32(0.25)),
        _record("Random", "cold-items", "recall", 50, 0.125),
    ]
    path = tmp_path / "sub" / "results.json"
    write_json(records, path)
    loaded = read_json(path)
    assert loaded == [
        _record("MostPop", "loo", "ndcg", 10, 0.25),
        _record("Random", "cold-items", "recall", 50, 0.125),
    ]
    assert type(loaded[0]["k"]) is int and type(loaded[0]["value"]) is float
    # Plain JSON a non-Python reader can parse; no temporary files left behind.
    assert json.loads(path.read_text())[1]["metric"] == "recall"
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "results.json"
    write_json([_record("M", "loo", "ndcg", 10, 0.5)], path)
    with pytest.raises(DataError, match="record 0 has value nan; JSON results must be finite"):
        write_json([_record("M", "loo", "ndcg", 10, float("nan"))], path)
    assert read_json(path)[0]["value"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
    # Overwriting replaces the content.
    write_json([_record("M", "loo", "ndcg", 10, 0.75)], path)
    assert read_json(path)[0]["value"] == 0.75


def test_read_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad.json: not valid JSON"):
        read_json(bad)
    bad.write_text('{"model": "M"}')
    with pytest.raises(DataError, match=r"bad.json: expected a JSON list of records, got dict"):
        read_json(bad)
    bad.write_text('[{"model": "M"}]')
    with pytest.raises(DataError, match=r"bad.json: record 0 lacks keys"):
        read_json(bad)
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")
