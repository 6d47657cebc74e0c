"""Tests of tfrec_llm.serving.rest_client against the local server's REST API over loopback."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.serving.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ModelNotFoundError,
    ServerUnavailableError,
)
from tfrec_llm.serving.grpc_client import GrpcClient
from tfrec_llm.serving.rest_client import RestClient


@pytest.fixture()
def client(server):
    return RestClient(f"http://127.0.0.1:{server.rest_port}", "retrieval", timeout_s=10)


def test_columnar_form_matches_reference_and_dtypes(client, retrieval_fixture):
    outputs = client.predict({"user_id": ["1", "3"], "k": 2}, form="inputs")
    ids, scores = retrieval_fixture.reference_recommend(["1", "3"], 1, k=2)
    assert outputs["item_ids"].dtype == object and outputs["item_ids"].astype(str).tolist() == ids.tolist()
    assert outputs["scores"].dtype == np.float32
    np.testing.assert_array_equal(outputs["scores"], scores)  # float32 round-trips through JSON


def test_row_form_matches_grpc(client, server):
    rows = client.predict({"user_id": ["2", "unknown"]}, form="instances")
    with GrpcClient("127.0.0.1", server.grpc_port) as grpc_client:
        expected = grpc_client.predict({"user_id": ["2", "unknown"]})
    np.testing.assert_array_equal(rows["item_ids"], expected["item_ids"])
    np.testing.assert_array_equal(rows["scores"], expected["scores"])


def test_row_form_refuses_scalar_inputs(client):
    with pytest.raises(
        InvalidRequestError, match=r"batch sizes \{'user_id': 1, 'k': None\}.*Leave scalar inputs"
    ):
        client.predict({"user_id": ["1"], "k": 3}, form="instances")
    with pytest.raises(InvalidRequestError, match="form='rows' is not one of"):
        client.predict({"user_id": ["1"]}, form="rows")


def test_recommend_matches_reference(client, retrieval_fixture):
    answers = client.recommend(["3", "1", "2"], k=3, batch_size=2, exclude_item_ids=[["60"], [], []])
    ids, scores = retrieval_fixture.reference_recommend(["3", "1", "2"], 1, k=3, exclude=[["60"], [], []])
    assert [[i for i, _ in a] for a in answers] == ids.tolist()
    np.testing.assert_allclose([[s for _, s in a] for a in answers], scores)


def test_metadata_and_status_match_grpc(client, server):
    with GrpcClient("127.0.0.1", server.grpc_port) as grpc_client:
        assert client.metadata() == grpc_client.metadata()
        assert client.status() == grpc_client.status() == [(1, "AVAILABLE")]


def test_http_errors_are_typed(server, client):
    missing = RestClient(f"http://127.0.0.1:{server.rest_port}", "nope", max_retries=0)
    with pytest.raises(
        ModelNotFoundError, match=r"HTTP 404: Servable not found for request: Latest\(nope\)"
    ) as info:
        missing.predict({"user_id": ["1"]})
    assert (info.value.code, info.value.http_status) == ("NOT_FOUND", 404)
    with pytest.raises(ModelNotFoundError, match="HTTP 404: Could not find any versions of model nope"):
        missing.status()
    with pytest.raises(InvalidRequestError, match=r"HTTP 400: .*expected a string") as info:
        client.predict({"user_id": [1]})
    assert info.value.code == "INVALID_ARGUMENT" and "expected a string" in info.value.server_message
    assert client.predict({"user_id": ["1"]})["item_ids"].shape == (1, 5)


def test_refused_connection_is_retried_then_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = []
    client = RestClient(f"http://127.0.0.1:{port}", max_retries=3, backoff_s=0.1, sleep=sleeps.append)
    with pytest.raises(ServerUnavailableError, match="server unavailable after 4 attempts") as info:
        client.status()
    assert info.value.attempts == 4 and info.value.http_status == 503
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_timeout_is_deadline_exceeded_and_not_retried():
    sleeps = []
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        client = RestClient(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.2, sleep=sleeps.append)
        with pytest.raises(DeadlineExceededError, match=r"took longer than timeout_s=0\.2") as info:
            client.status()
    assert info.value.code == "DEADLINE_EXCEEDED" and sleeps == []


def test_constructor_validates_arguments():
    with pytest.raises(InvalidRequestError, match="must start with http:// or https://"):
        RestClient("localhost:8501")
    with pytest.raises(InvalidRequestError, match="timeout_s=0 must be > 0"):
        RestClient(timeout_s=0)
