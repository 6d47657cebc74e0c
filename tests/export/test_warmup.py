"""Tests of tfrec_llm.export.warmup."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ExportError
from tfrec_llm.export.warmup import (
    read_warmup_requests,
    to_tensor_proto,
    warmup_path,
    write_warmup_requests,
)

REQUESTS = [
    {"user_id": np.array(["1", "2"])},
    {"user_id": np.array([b"3"]), "k": np.array(2, np.int32), "exclude_item_ids": [["10", "20"]]},
]


def test_round_trip_keeps_model_spec_and_tensors(tmp_path):
    path = write_warmup_requests(tmp_path, "retrieval", REQUESTS)
    assert path == os.path.join(str(tmp_path), "assets.extra", "tf_serving_warmup_requests")
    assert warmup_path(tmp_path) == path
    requests = read_warmup_requests(tmp_path)
    assert len(requests) == 2
    assert {r.model_spec.name for r in requests} == {"retrieval"}
    assert {r.model_spec.signature_name for r in requests} == {"serving_default"}
    assert tf.make_ndarray(requests[0].inputs["user_id"]).tolist() == [b"1", b"2"]
    second = {k: tf.make_ndarray(v) for k, v in requests[1].inputs.items()}
    assert second["k"].dtype == np.int32 and second["k"].shape == () and int(second["k"]) == 2
    assert second["exclude_item_ids"].tolist() == [[b"10", b"20"]]


def test_string_tensor_proto_encodes_unicode_and_keeps_empty_shapes():
    array = tf.make_ndarray(to_tensor_proto(np.array(["é", "b"])))
    assert array.tolist() == ["é".encode(), b"b"]
    empty = tf.make_ndarray(to_tensor_proto(np.zeros((0, 0), dtype=object)))
    assert empty.shape == (0, 0)


def test_no_file_reads_as_no_requests(tmp_path):
    assert read_warmup_requests(tmp_path) == []


@pytest.mark.parametrize(
    ("requests", "match"),
    [
        ([], "replays 1 to 1000"),
        ([{}], r"requests\[0\] has no inputs"),
        ([{"x": [1]}] * 1001, "1001 entries"),
    ],
)
def test_bad_requests_are_rejected(tmp_path, requests, match):
    with pytest.raises(ExportError, match=match):
        write_warmup_requests(tmp_path, "retrieval", requests)


def test_missing_version_dir_is_rejected(tmp_path):
    with pytest.raises(ExportError, match="does not exist; export the SavedModel first"):
        write_warmup_requests(tmp_path / "nope", "retrieval", REQUESTS)


def test_non_predict_record_is_rejected(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(tmp_path / "assets.extra")
    with tf.io.TFRecordWriter(warmup_path(tmp_path)) as writer:
        log = prediction_log_pb2.PredictionLog()
        log.classify_log.SetInParent()
        writer.write(log.SerializeToString())
    with pytest.raises(ExportError, match="record 0 holds a 'classify_log' log"):
        read_warmup_requests(tmp_path)


def test_warmup_requests_succeed_against_the_server(retrieval_v1, tmp_path, retrieval_fixture):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfrec_llm.serving.local import LocalModelServer

    version_dir = tmp_path / "retrieval" / "1"
    shutil.copytree(retrieval_v1, version_dir)
    write_warmup_requests(version_dir, "retrieval", REQUESTS)
    with LocalModelServer(model_base_path=str(version_dir.parent), port=0, rest_port=None) as server:
        assert server.served_versions("retrieval") == (1,)  # the load replayed the file
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answers = [stub.Predict(r, timeout=10) for r in read_warmup_requests(version_dir)]
    ids, scores = retrieval_fixture.reference_recommend(["3"], 1, k=2, exclude=[["10", "20"]])
    assert tf.make_ndarray(answers[1].outputs["item_ids"]).astype(str).tolist() == ids.tolist()
    np.testing.assert_allclose(tf.make_ndarray(answers[1].outputs["scores"]), scores)
    # by hand: user 3 base [0.5 0.4 0.3 0.2 0.1 0.6] + 10, items 10 and 20 excluded -> 60, 30
    assert ids.tolist() == [["60", "30"]]
