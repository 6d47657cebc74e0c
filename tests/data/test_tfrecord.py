"""Tests for tfrec_llm.data.tfrecord: sharded tf.train.Example round trips."""

import os

import numpy as np
import pandas as pd
import pytest

import tfrec_llm  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tfrec_llm.data import tfrecord
from tfrec_llm.errors import DataError


def _frame(n=7):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "user_id": pd.Series([f"u{i % 3}" for i in range(n)], dtype="str"),
            "item_id": pd.Series([f"itém {i}" for i in range(n)], dtype="str"),  # non-ASCII text
            "timestamp": np.arange(n, dtype=np.int64) * 1_000_000_007,
            "rating": rng.random(n),  # full float64 precision must survive
            "event": pd.Series(["click"] * n, dtype="str"),
            "tie_key": rng.random(n),
        }
    )


def test_round_trip_is_exact_and_ordered(tmp_path):
    frame = _frame()
    paths = tfrecord.write_interaction_shards(frame, str(tmp_path), num_shards=3)
    assert [os.path.basename(p) for p in paths] == [
        f"interactions-0000{k}-of-00003.tfrecord" for k in range(3)
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(p) for p in paths] + ["interactions.schema.json"]
    )  # no temp files
    back = tfrecord.frame_from_shards(str(tmp_path / "interactions-*.tfrecord"))
    pd.testing.assert_frame_equal(back, frame)


def test_read_dataset_yields_typed_dicts(tmp_path):
    frame = _frame(4)
    tfrecord.write_interaction_shards(frame, str(tmp_path), num_shards=2, prefix="train")
    dataset = tfrecord.read_interaction_shards(str(tmp_path / "train-*.tfrecord"))
    rows = list(dataset.as_numpy_iterator())
    assert len(rows) == 4
    assert list(rows[0]) == frame.columns.tolist()
    assert rows[1]["item_id"].decode("utf-8") == "itém 1"
    assert rows[3]["timestamp"] == 3 * 1_000_000_007
    assert rows[2]["rating"] == frame["rating"][2]
    batched = tfrecord.read_interaction_shards(str(tmp_path / "train-*.tfrecord"), batch_size=3)
    shapes = [b["user_id"].shape[0] for b in batched.as_numpy_iterator()]
    assert shapes == [3, 1]


def test_empty_frame_round_trip(tmp_path):
    frame = _frame(0)
    tfrecord.write_interaction_shards(frame, str(tmp_path), num_shards=2)
    back = tfrecord.frame_from_shards(str(tmp_path / "interactions-*.tfrecord"))
    pd.testing.assert_frame_equal(back, frame)


def test_write_errors(tmp_path):
    with pytest.raises(DataError, match=r"num_shards=0 must be >= 1"):
        tfrecord.write_interaction_shards(_frame(), str(tmp_path), num_shards=0)
    bad = _frame().assign(flag=True)
    with pytest.raises(DataError, match=r"column 'flag' has dtype bool; supported are str"):
        tfrecord.write_interaction_shards(bad, str(tmp_path), num_shards=1)
    with pytest.raises(
        DataError,
        match=r"write_interaction_shards: interactions frame is "
        r"missing required column 'timestamp'",
    ):
        tfrecord.write_interaction_shards(_frame().drop(columns=["timestamp"]), str(tmp_path), 1)


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match=r"no TFRecord shards match"):
        tfrecord.read_interaction_shards(str(tmp_path / "none-*.tfrecord"))
    tfrecord.write_interaction_shards(_frame(), str(tmp_path), num_shards=2)
    stale = tmp_path / "interactions-00005-of-00009.tfrecord"
    stale.write_bytes(b"")
    with pytest.raises(
        DataError,
        match=r"matches shards that .*interactions\.schema\.json does "
        r"not list: \['interactions-00005-of-00009\.tfrecord'\]",
    ):
        tfrecord.read_interaction_shards(str(tmp_path / "interactions-*.tfrecord"))
    os.remove(tmp_path / "interactions.schema.json")
    with pytest.raises(DataError, match=r"no \.schema\.json file beside the shards"):
        tfrecord.read_interaction_shards(str(tmp_path / "interactions-0000[01]-*.tfrecord"))
