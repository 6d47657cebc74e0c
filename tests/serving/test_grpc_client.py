"""Tests of tfrec_llm.serving.grpc_client against the local server over loopback."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ServingError
from tfrec_llm.serving.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
)
from tfrec_llm.serving.grpc_client import GrpcClient, coerce_inputs, recommend_in_batches
from tfrec_llm.serving.local import LocalModelServer


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def client(server):
    with GrpcClient("127.0.0.1", server.grpc_port, "retrieval", timeout_s=10) as c:
        yield c


def test_predict_matches_the_numpy_reference(client, retrieval_fixture):
    outputs = client.predict({"user_id": ["1", "2"], "k": 3})  # k: Python int cast to int32
    ids, scores = retrieval_fixture.reference_recommend(["1", "2"], 1, k=3)
    assert outputs["item_ids"].astype(str).tolist() == ids.tolist()
    np.testing.assert_allclose(outputs["scores"], scores)


def test_recommend_batches_users_and_applies_recent_and_exclude(client, retrieval_fixture):
    users = ["1", "2", "3", "unknown", "1"]
    recent = [["20", "20"], [], ["60"], [], []]
    exclude = [["10"], ["20", "40"], [], [], []]
    answers = client.recommend(users, k=2, batch_size=2, recent_item_ids=recent, exclude_item_ids=exclude)
    ids, scores = retrieval_fixture.reference_recommend(users, 1, k=2, recent=recent, exclude=exclude)
    assert answers == [
        [(i, pytest.approx(float(s))) for i, s in zip(row_ids, row_scores, strict=True)]
        for row_ids, row_scores in zip(ids, scores, strict=True)
    ]
    # by hand, user 2 without 20 and 40: 0.4 (30) + 10, 0.3 (60) + 10
    assert [i for i, _ in answers[1]] == ["30", "60"]


def test_recommend_in_batches_sends_padded_batches():
    calls = []

    def fake_predict(inputs):
        calls.append({k: v.copy() for k, v in inputs.items()})
        n = len(inputs["user_id"])
        return {
            "item_ids": np.array([[b"7", b""]] * n, dtype=object),
            "scores": np.ones((n, 2), np.float32),
        }

    answers = recommend_in_batches(fake_predict, ["a", "b", "c"], 5, 2, None, [["x"], ["y", "z"], []])
    assert [len(c["user_id"]) for c in calls] == [2, 1]
    assert calls[0]["recent_item_ids"].tolist() == [[b"x", b""], [b"y", b"z"]]
    assert calls[1]["recent_item_ids"].shape == (1, 0)
    assert calls[0]["k"].dtype == np.int32 and "exclude_item_ids" not in calls[0]
    assert answers == [[("7", 1.0)]] * 3  # "" padding ids dropped
    assert "user_text" not in calls[0]  # not sent unless given

    calls.clear()
    recommend_in_batches(fake_predict, ["a", "b", "c"], 5, 2, None, None, ["space operas", "", "é"])
    assert [c["user_text"].tolist() for c in calls] == [[b"space operas", b""], ["é".encode()]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"k=0 and batch_size=256 must both be >= 1"),
        ({"exclude_item_ids": [[]]}, "exclude_item_ids has 1 rows but user_ids has 2"),
        ({"user_texts": ["only one"]}, "user_texts has 1 rows but user_ids has 2"),
    ],
)
def test_recommend_argument_errors(client, kwargs, match):
    with pytest.raises(InvalidRequestError, match=match):
        client.recommend(["1", "2"], **kwargs)


def test_coerce_inputs_casts_only_within_a_kind():
    out = coerce_inputs(
        {"k": 3, "x": [1, 2], "s": ["é"], "f": [1.5]}, {"k": "int32", "x": "float32", "f": "int32"}
    )
    assert out["k"].dtype == np.int32 and out["x"].dtype == np.float32
    assert out["s"].tolist() == ["é".encode()] and out["f"].dtype == np.float64  # not truncated


def test_metadata_and_status(client):
    meta = client.metadata()
    assert meta["model_name"] == "retrieval" and meta["version"] == 1
    signature = meta["signatures"]["serving_default"]
    assert list(meta["signatures"]) == ["serving_default"]  # __saved_model_init_op hidden
    assert signature["inputs"]["user_id"] == {"dtype": "string", "shape": [-1]}
    assert signature["inputs"]["k"] == {"dtype": "int32", "shape": []}
    assert signature["outputs"]["scores"] == {"dtype": "float32", "shape": [-1, -1]}
    assert signature["defaults"] == ["exclude_item_ids", "k", "recent_item_ids"]
    assert client.status() == [(1, "AVAILABLE")]


def test_typed_errors_carry_code_and_server_message(server):
    missing = GrpcClient("127.0.0.1", server.grpc_port, "nope", max_retries=0)
    with missing, pytest.raises(ModelNotFoundError, match=r"NOT_FOUND: Servable not") as info:
        missing.predict({"user_id": ["1"]}, cast_to_signature=False)
    assert info.value.code == "NOT_FOUND"
    assert info.value.server_message == "Servable not found for request: Latest(nope)"
    assert isinstance(info.value, ServingError)
    with GrpcClient("127.0.0.1", server.grpc_port, "retrieval") as client:
        with pytest.raises(InvalidRequestError, match="Inputs contains invalid name") as info:
            client.predict({"user_id": ["1"], "userid": ["1"]})
        assert info.value.code == "INVALID_ARGUMENT"
        with pytest.raises(InvalidRequestError, match='signature key "nope" not found') as info:
            client.predict({"user_id": ["1"]}, signature_name="nope")
        assert info.value.code == "FAILED_PRECONDITION"
        with pytest.raises(ModelNotFoundError, match=r"Specific\(retrieval, 5\)"):
            client.predict({"user_id": ["1"]}, version=5)
        assert client.predict({"user_id": ["1"]})["item_ids"].shape == (1, 5)


def test_closed_port_is_retried_with_exponential_backoff():
    sleeps = []
    client = GrpcClient("127.0.0.1", _closed_port(), max_retries=3, backoff_s=0.1, sleep=sleeps.append)
    with pytest.raises(ServerUnavailableError, match="server unavailable after 4 attempts") as info:
        client.status()
    client.close()
    assert info.value.attempts == 4 and info.value.code == "UNAVAILABLE"
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_other_errors_are_not_retried(server):
    sleeps = []
    client = GrpcClient("127.0.0.1", server.grpc_port, "nope", sleep=sleeps.append)
    with client, pytest.raises(ModelNotFoundError):
        client.status()
    assert sleeps == []


def test_retry_reaches_a_server_that_comes_up(model_base):
    port = _closed_port()
    started = []

    def sleep_then_start(seconds):
        if not started:
            started.append(
                LocalModelServer(model_base_path=str(model_base), port=port, rest_port=None).start()
            )
        time.sleep(seconds)

    client = GrpcClient("127.0.0.1", port, max_retries=5, backoff_s=0.05, sleep=sleep_then_start)
    try:
        assert client.status() == [(1, "AVAILABLE")]
    finally:
        client.close()
        for srv in started:
            srv.stop()


def test_deadline_exceeded_is_typed(server):
    client = GrpcClient("127.0.0.1", server.grpc_port, timeout_s=1e-6, max_retries=0)
    with client, pytest.raises(DeadlineExceededError, match=r"longer than timeout_s=1e-06") as info:
        client.predict({"user_id": ["1"]}, cast_to_signature=False)
    assert info.value.code == "DEADLINE_EXCEEDED"
