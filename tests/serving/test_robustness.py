"""The local server under misuse: broken versions, version retries, lying or hostile REST bodies.

Every test drives the server from inside (``poll_once``, raw sockets) and waits on answers,
never on sleeps. The poller runs once an hour here, so only the explicit polls load versions.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import tfrec_llm  # noqa: F401
from tfrec_llm.serving.local import LocalModelServer

DEADLINE = 120  # seconds: generous for a busy machine; the answers come in well under 1 s
READ_TIMEOUT_S = 0.5  # the REST read timeout of the servers below


def _start(base, **kwargs):
    return LocalModelServer(
        model_base_path=str(base),
        port=0,
        rest_port=0,
        poll_interval_s=3600,
        rest_read_timeout_s=READ_TIMEOUT_S,
        **kwargs,
    ).start()


def _break(version_dir):
    """A version folder caught mid-copy: saved_model.pb holds only its first half."""
    pb = os.path.join(version_dir, "saved_model.pb")
    with open(pb, "rb") as f:
        data = f.read()
    with open(pb, "wb") as f:
        f.write(data[: len(data) // 2])


def _predict_version(server, version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.array([b"1"], dtype=object)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=DEADLINE)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["scores"])


def _status(server):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "retrieval"
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        statuses = stub.GetModelStatus(request, timeout=DEADLINE).model_version_status
    state = get_model_status_pb2.ModelVersionStatus.State.Name
    return {s.version: (state(s.state), s.status.error_message) for s in statuses}


def test_a_failed_version_is_retried_on_the_next_poll(tmp_path, retrieval_templates):
    """Version 2 copied in place: its first load fails, the retry once complete serves it."""
    base = tmp_path / "retrieval"
    shutil.copytree(retrieval_templates[1], base / "1")
    server = _start(base)
    try:
        shutil.copytree(retrieval_templates[2], base / "2")
        _break(base / "2")
        server.poll_once()
        assert server.served_versions("retrieval") == (1,)
        state, error = _status(server)[2]
        assert state == "END" and "DecodeError" in error
        # the copy completes in place (no rename): the next poll loads it
        shutil.copytree(retrieval_templates[2], base / "2", dirs_exist_ok=True)
        server.poll_once()
        assert server.served_versions("retrieval") == (2,)
        version, scores = _predict_version(server)
        # by hand: user 1's best item scores 0.9 + 10 * version
        assert version == 2 and scores[0, 0] == pytest.approx(20.9)
        assert _status(server)[2] == ("AVAILABLE", "")
    finally:
        server.stop()


def test_a_broken_newest_version_at_startup_serves_the_newest_that_loads(
    tmp_path, retrieval_templates, caplog
):
    base = tmp_path / "retrieval"
    for version in (1, 2):
        shutil.copytree(retrieval_templates[version], base / str(version))
    shutil.copytree(retrieval_templates[2], base / "3")
    _break(base / "3")
    caplog.set_level(logging.INFO, logger="tfrec_llm.serving.local")
    server = _start(base)
    try:
        assert server.served_versions("retrieval") == (2,)
        assert _predict_version(server)[0] == 2  # Latest
        assert _predict_version(server, 2)[0] == 2  # an explicit request for the good version
        assert _status(server)[3][0] == "END"
    finally:
        server.stop()
    log = caplog.text
    assert "serving version 2, the newest version that loads, because version(s) 3 failed" in log
    assert "DecodeError" in log
    assert "no loadable version folder" not in log


def test_a_model_whose_only_version_is_broken_says_so(tmp_path, retrieval_templates, caplog):
    base = tmp_path / "retrieval"
    shutil.copytree(retrieval_templates[1], base / "1")
    _break(base / "1")
    caplog.set_level(logging.WARNING, logger="tfrec_llm.serving.local")
    server = _start(base)
    try:
        assert server.served_versions("retrieval") == ()
    finally:
        server.stop()
    assert f"every version under {base} failed to load (1; see the errors above)" in caplog.text


# ------------------------------------------------------------------------------------- REST
@pytest.fixture()
def rest_server(tmp_path, retrieval_templates):
    base = tmp_path / "retrieval"
    shutil.copytree(retrieval_templates[1], base / "1")
    server = _start(base, rest_max_body_bytes=1 << 20)
    try:
        yield server
    finally:
        server.stop()


def _raw_post(server, headers, body):
    """POSTs ``body`` with exactly ``headers`` (no Content-Length of http.client's own)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=DEADLINE)
    try:
        conn.putrequest("POST", "/v1/models/retrieval:predict", skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())["error"]
    finally:
        conn.close()


def _still_serves(server):
    """A normal request still gets its answer: no handler thread was left hanging."""
    body = json.dumps({"instances": ["1"]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=DEADLINE)
    try:
        conn.request("POST", "/v1/models/retrieval:predict", body=body)
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    assert response.status == 200
    assert answer["predictions"][0]["item_ids"][0] == "10"  # by hand: user 1's best item


@pytest.mark.parametrize(
    ("length", "code", "message"),
    [
        ("abc", 400, "Content-Length must be a non-negative integer; got 'abc'"),
        ("12abc", 400, "Content-Length must be a non-negative integer; got '12abc'"),
        ("-5", 400, "Content-Length must be a non-negative integer; got '-5'"),
        (str(10**12), 413, f"Request body of {10**12} bytes is larger than the limit of 1048576"),
    ],
)
def test_rest_rejects_a_bad_content_length_without_reading(rest_server, length, code, message):
    status, error = _raw_post(rest_server, {"Content-Length": length}, b'{"instances": ["1"]}')
    assert status == code and error.startswith(message)
    _still_serves(rest_server)


def test_rest_body_shorter_than_its_content_length_times_out_with_400(rest_server):
    """The client claims 100 bytes, sends 10 and waits: the handler gives up after its timeout."""
    status, error = _raw_post(rest_server, {"Content-Length": "100"}, b'{"instance')
    assert status == 400
    assert error == (
        f"Request body ended after 10 of its Content-Length 100 bytes (no more bytes within {READ_TIMEOUT_S:g}s)."
    )
    _still_serves(rest_server)


@pytest.mark.parametrize("depth", [65, 100_000])
def test_rest_deeply_nested_json_is_400(rest_server, depth):
    body = ('{"instances": ' + "[" * depth + "]" * depth + "}").encode()
    status, error = _raw_post(rest_server, {"Content-Length": str(len(body))}, body)
    assert (status, error) == (400, "JSON Parse error: the body nests deeper than 64 levels.")
    _still_serves(rest_server)


def test_rest_json_at_the_depth_limit_is_not_refused_for_depth(rest_server):
    # 63 brackets inside the body object: 64 levels, allowed; the value itself is not a valid
    # user_id tensor, so the answer is the ordinary conversion error, not the depth error
    body = ('{"instances": ' + "[" * 63 + "]" * 63 + "}").encode()
    status, error = _raw_post(rest_server, {"Content-Length": str(len(body))}, body)
    assert status == 400 and "nests deeper" not in error
