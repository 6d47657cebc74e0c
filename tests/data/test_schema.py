"""Tests for tfrec_llm.data.schema: sort_ids, validate_frame, RecDataset, ValidationReport."""

import numpy as np
import pandas as pd
import pytest

from tfrec_llm.data import schema
from tfrec_llm.data.schema import RecDataset, ValidationReport, sort_ids, validate_frame
from tfrec_llm.errors import DataError


def _interactions(**overrides):
    data = {
        "user_id": pd.Series(["1", "2"], dtype="str"),
        "item_id": pd.Series(["7", "8"], dtype="str"),
        "timestamp": np.array([10, 20], dtype=np.int64),
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_sort_ids_numeric_when_all_decimal():
    assert sort_ids(["10", "9", "2", "10", "100"]).tolist() == ["2", "9", "10", "100"]


def test_sort_ids_lexicographic_when_any_non_decimal():
    assert sort_ids(["10", "9", "a", "2"]).tolist() == ["10", "2", "9", "a"]
    # A sign or a decimal point is not a decimal integer string.
    assert sort_ids(["10", "-1", "9"]).tolist() == ["-1", "10", "9"]


def test_sort_ids_equal_numbers_ordered_lexicographically():
    assert sort_ids(["1", "01", "001", "2"]).tolist() == ["001", "01", "1", "2"]


def test_sort_ids_accepts_series_arrays_and_empty():
    assert sort_ids(pd.Series(["3", "1", "3"], dtype="str")).tolist() == ["1", "3"]
    assert sort_ids(np.array(["b", "a"], dtype=object)).tolist() == ["a", "b"]
    out = sort_ids([])
    assert out.shape == (0,)
    assert out.dtype == object


def test_sort_ids_huge_integers_do_not_overflow():
    big = "123456789012345678901234567890"
    assert sort_ids([big, "5"]).tolist() == ["5", big]


def test_id_positions_marks_missing_with_minus_one():
    ordered = np.array(["1", "2", "10"], dtype=object)
    got = schema.id_positions(pd.Series(["10", "3", "1"], dtype="str"), ordered)
    assert got.tolist() == [2, -1, 0]
    assert got.dtype == np.int64


def test_validate_frame_accepts_canonical_frames():
    validate_frame(_interactions(rating=np.array([1.0, 2.0])), "interactions", "test")
    validate_frame(pd.DataFrame({"item_id": ["1"], "title": ["x"]}), "items", "test")
    validate_frame(pd.DataFrame({"user_id": ["1"]}), "users", "test")


def test_validate_frame_missing_column_names_source_and_available_columns():
    frame = _interactions().drop(columns=["timestamp"])
    with pytest.raises(
        DataError,
        match=r"ratings\.csv: interactions frame is missing required "
        r"column 'timestamp'; available columns: "
        r"\['user_id', 'item_id'\]",
    ):
        validate_frame(frame, "interactions", "ratings.csv")


def test_validate_frame_rejects_bad_dtypes():
    with pytest.raises(
        DataError,
        match=r"src: interactions frame column 'timestamp' must be "
        r"int64 .* got dtype float64",
    ):
        validate_frame(_interactions(timestamp=np.array([1.0, 2.0])), "interactions", "src")
    with pytest.raises(DataError, match=r"column 'rating' must be float64"):
        validate_frame(_interactions(rating=np.array([1, 2])), "interactions", "src")
    with pytest.raises(DataError, match=r"column 'user_id' must hold str values"):
        validate_frame(_interactions(user_id=np.array([1, 2])), "interactions", "src")
    with pytest.raises(DataError, match=r"items frame column 'title' must hold str values"):
        validate_frame(pd.DataFrame({"item_id": ["1"], "title": [None]}), "items", "src")


def test_validate_frame_rejects_empty_and_duplicate_ids():
    with pytest.raises(DataError, match=r"column 'item_id' has 1 empty ids"):
        validate_frame(_interactions(item_id=pd.Series(["7", ""], dtype="str")), "interactions", "src")
    with pytest.raises(
        DataError,
        match=r"src: users frame column 'user_id' must be unique; "
        r"1 duplicates, e.g. '3'",
    ):
        validate_frame(pd.DataFrame({"user_id": ["3", "3"]}), "users", "src")


def test_validate_frame_rejects_unknown_kind_and_non_frames():
    with pytest.raises(DataError, match=r"kind='events'"):
        validate_frame(_interactions(), "events", "src")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"must be a pandas DataFrame, got list"):
        validate_frame([], "items", "src")  # type: ignore[arg-type]


def _dataset(**overrides):
    kwargs = dict(
        name="toy",
        interactions=_interactions(),
        items=pd.DataFrame({"item_id": ["7", "8"], "title": ["a", ""]}),
        users=pd.DataFrame({"user_id": ["1", "2"]}),
        item_text_fields=("title",),
    )
    kwargs.update(overrides)
    return RecDataset(**kwargs)


def test_recdataset_defaults_and_validation():
    ds = _dataset()
    assert ds.report == ValidationReport()
    assert not ds.report
    assert ds.user_text_field is None


def test_recdataset_rejects_unknown_ids_and_fields():
    with pytest.raises(
        DataError,
        match=r"1 interactions have a item_id that is not in the items "
        r"frame, e.g. '8'",
    ):
        _dataset(items=pd.DataFrame({"item_id": ["7"]}), item_text_fields=())
    with pytest.raises(DataError, match=r"have a user_id that is not in the users frame"):
        _dataset(users=pd.DataFrame({"user_id": ["1"]}))
    with pytest.raises(DataError, match=r"item_text_fields names columns \['plot'\]"):
        _dataset(item_text_fields=("plot",))


def test_recdataset_is_frozen():
    ds = _dataset()
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]


def test_validation_report_counts_examples_and_summary():
    report = ValidationReport.from_problems(
        [
            ("bad_rating", 7, [f"f.csv, line {k}" for k in range(2, 9)]),
            ("bad_rating", 1, ["g.csv, line 2"]),
            ("empty_text", 2, ["items.csv, line 3", "items.csv, line 4"]),
            ("unknown_item", 0, []),
        ]
    )
    assert dict(report.counts) == {"bad_rating": 8, "empty_text": 2}
    assert report.examples["bad_rating"] == tuple(f"f.csv, line {k}" for k in range(2, 7))
    assert report.num_dropped == 8
    text = report.summary()
    assert text.startswith("dropped 8 rows (bad_rating=8)\nkept with notes: empty_text=2\n")
    assert "  [bad_rating] f.csv, line 2" in text
    assert ValidationReport().summary() == "no problems"
