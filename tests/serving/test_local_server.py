"""Tests of tfrec_llm.serving.local (LocalModelServer) over real loopback sockets with TF Serving's stubs."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.models_config import write_models_config
from tfrec_llm.export.warmup import write_warmup_requests
from tfrec_llm.serving.local import LocalModelServer, list_version_folders

ALIASES = ["exclude_item_ids", "k", "recent_item_ids", "user_id"]
RPC_DEADLINE = 120  # seconds: generous, so a busy CI machine never turns an answer into DEADLINE_EXCEEDED


def _stubs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return (
        channel,
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )


def _request(model="retrieval", version=None, signature=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    if signature is not None:
        request.model_spec.signature_name = signature
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def _outputs(response):
    return {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}


def _users(*ids):
    return np.array([u.encode() for u in ids], dtype=object)


def test_binds_free_loopback_ports(server):
    assert server.grpc_port > 0 and server.rest_port > 0 and server.grpc_port != server.rest_port


def test_metadata_over_grpc(server):
    channel, predictions, _ = _stubs(server)
    with channel:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "retrieval"
        response = predictions.GetModelMetadata(request, timeout=RPC_DEADLINE)
    assert response.model_spec.name == "retrieval" and response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    signature = signature_map.signature_def["serving_default"]
    assert sorted(signature.inputs) == ALIASES
    assert sorted(signature.outputs) == ["item_ids", "scores"]
    assert sorted(signature.defaults) == ["exclude_item_ids", "k", "recent_item_ids"]
    assert signature.inputs["user_id"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in signature.inputs["recent_item_ids"].tensor_shape.dim] == [-1, -1]
    assert signature.inputs["k"].dtype == tf.int32.as_datatype_enum
    assert tf.make_ndarray(signature.defaults["k"]) == 10


def test_status_over_grpc(server):
    channel, _, models = _stubs(server)
    with channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "retrieval"
        response = models.GetModelStatus(request, timeout=RPC_DEADLINE)
    [status] = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (
        1,
        get_model_status_pb2.ModelVersionStatus.AVAILABLE,
        0,
    )


def test_predict_equals_the_loaded_saved_model(server, model_base, retrieval_fixture):
    loaded = tf.saved_model.load(str(model_base / "1"))
    inputs = {
        "user_id": _users("1", "2", "unknown"),
        "recent_item_ids": np.array([[b"20", b"20"], [b"", b""], [b"60", b""]], dtype=object),
        "exclude_item_ids": np.array([[b"10"], [b"20"], [b""]], dtype=object),
        "k": np.array(3, np.int32),
    }
    in_process = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**inputs).items()}
    channel, predictions, _ = _stubs(server)
    with channel:
        response = predictions.Predict(_request(**inputs), timeout=RPC_DEADLINE)
    served = _outputs(response)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(served["item_ids"], in_process["item_ids"])
    np.testing.assert_array_equal(served["scores"], in_process["scores"])
    ids, scores = retrieval_fixture.reference_recommend(
        ["1", "2", "unknown"],
        1,
        k=3,
        recent=[["20", "20"], [], ["60"]],
        exclude=[["10"], ["20"], []],
    )
    assert served["item_ids"].astype(str).tolist() == ids.tolist()
    np.testing.assert_allclose(served["scores"], scores)
    # user 1 by hand: 10 excluded; 20 gets 0.1 + 2 * 0.25 = 0.6 -> 50 (0.7), 20 (0.6), 30 (0.5)
    assert ids[0].tolist() == ["50", "20", "30"]


def test_predict_fills_missing_inputs_from_signature_defaults(server, retrieval_fixture):
    channel, predictions, _ = _stubs(server)
    with channel:
        response = predictions.Predict(
            _request(user_id=_users("2"), signature="serving_default"), timeout=RPC_DEADLINE
        )
    served = _outputs(response)
    ids, scores = retrieval_fixture.reference_recommend(["2"], 1)  # k=10 default, capped at 5
    assert served["item_ids"].shape == (1, 5)
    assert served["item_ids"].astype(str).tolist() == ids.tolist()
    np.testing.assert_allclose(served["scores"], scores)


def test_output_filter_returns_only_requested_outputs(server):
    channel, predictions, _ = _stubs(server)
    request = _request(user_id=_users("1"))
    request.output_filter.append("scores")
    with channel:
        response = predictions.Predict(request, timeout=RPC_DEADLINE)
    assert list(response.outputs) == ["scores"]


BAD_REQUESTS = [
    (
        "unknown model",
        lambda: _request(model="nope", user_id=_users("1")),
        grpc.StatusCode.NOT_FOUND,
        r"^Servable not found for request: Latest\(nope\)$",
    ),
    (
        "unknown version",
        lambda: _request(version=7, user_id=_users("1")),
        grpc.StatusCode.NOT_FOUND,
        r"^Servable not found for request: Specific\(retrieval, 7\)$",
    ),
    (
        "unknown signature",
        lambda: _request(signature="nope", user_id=_users("1")),
        grpc.StatusCode.FAILED_PRECONDITION,
        r'^Serving signature key "nope" not found\.$',
    ),
    (
        "unknown input alias",
        lambda: _request(user_id=_users("1"), userid=_users("1")),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"Inputs contains invalid name\. Used request inputs: user_id",
    ),
    (
        "extra input beyond signature size",
        lambda: _request(
            user_id=_users("1"),
            k=np.int32(1),
            bogus=np.int32(1),
            recent_item_ids=np.zeros((0, 0), object),
            exclude_item_ids=np.zeros((0, 0), object),
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"input size does not match signature: 5!=4 .*Sent extra: \{bogus\}",
    ),
    (
        "missing required input",
        lambda: _request(k=np.int32(3)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"Signature input alias: user_id\(feed name: serving_default_user_id:0\) not found",
    ),
    (
        "wrong dtype",
        lambda: _request(user_id=np.array([1.0], np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"Expects arg\[3\] to be string but float32 is provided",
    ),
    (
        "wrong rank",
        lambda: _request(user_id=np.array([[b"1", b"2"]], dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"input 'user_id' has shape \[1, 2\] \(rank 2\) but the signature expects shape \[-1\]",
    ),
    (
        "scalar k sent as a vector",
        lambda: _request(user_id=_users("1"), k=np.array([3], np.int32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"input 'k' has shape \[1\] \(rank 1\) but the signature expects shape \[\]",
    ),
    (
        "bad value: k = 0",
        lambda: _request(user_id=_users("1"), k=np.int32(0)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"k must be >= 1",
    ),
    (
        "bad value: exclude rows",
        lambda: _request(user_id=_users("1", "2"), exclude_item_ids=np.array([[b"1"]] * 3, object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        r"exclude_item_ids must have one row per user_id",
    ),
]


def test_bad_requests_get_tf_serving_codes_and_the_server_keeps_serving(server):
    channel, predictions, _ = _stubs(server)
    with channel:
        for name, build, code, pattern in BAD_REQUESTS:
            with pytest.raises(grpc.RpcError) as info:
                predictions.Predict(build(), timeout=RPC_DEADLINE)
            assert info.value.code() == code, name
            assert info.value.details() is not None
            assert re.search(pattern, info.value.details()), (name, info.value.details())
        bad_filter = _request(user_id=_users("1"))
        bad_filter.output_filter.append("nope")
        with pytest.raises(grpc.RpcError, match="output tensor alias not found in signature: nope"):
            predictions.Predict(bad_filter, timeout=RPC_DEADLINE)
        with pytest.raises(grpc.RpcError, match="must specify at least one metadata_field"):
            predictions.GetModelMetadata(
                get_model_metadata_pb2.GetModelMetadataRequest(), timeout=RPC_DEADLINE
            )
        with pytest.raises(grpc.RpcError) as info:
            predictions.Classify(classification_pb2.ClassificationRequest(), timeout=RPC_DEADLINE)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        good = predictions.Predict(_request(user_id=_users("1")), timeout=RPC_DEADLINE)
    assert _outputs(good)["item_ids"].shape == (1, 5)


def test_hot_swap_answers_every_request_and_switches_to_the_new_version(
    server, model_base, retrieval_templates, retrieval_fixture
):
    """The poller thread picks up version 2; no request fails and none goes back to version 1."""
    channel, predictions, models = _stubs(server)
    seen, errors = [], []
    answered = threading.Condition()
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                response = predictions.Predict(_request(user_id=_users("1")), timeout=RPC_DEADLINE)
            except grpc.RpcError as exc:  # must never happen
                with answered:
                    errors.append(exc)
                    answered.notify_all()
                continue
            version = response.model_spec.version.value
            top = float(_outputs(response)["scores"][0, 0])
            with answered:
                seen.append((version, top))
                answered.notify_all()

    def answers_from(version):
        return sum(1 for v, _ in seen if v == version)

    thread = threading.Thread(target=loop)
    with channel:
        thread.start()
        try:
            with answered:
                assert answered.wait_for(lambda: answers_from(1) >= 5 or errors, timeout=60)
            retrieval_fixture.publish_version(model_base, retrieval_templates[2], 2)
            # generous: the poller needs one interval plus the load; nothing is timed
            with answered:
                assert answered.wait_for(lambda: answers_from(2) >= 5 or errors, timeout=120)
        finally:
            stop.set()
            thread.join()
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "retrieval"
        status = models.GetModelStatus(request, timeout=RPC_DEADLINE)
    assert errors == []
    versions = [v for v, _ in seen]
    assert versions[0] == 1 and versions[-1] == 2
    assert versions == sorted(versions)  # never back to version 1 once 2 answered
    # scores by hand: user 1's best item is 0.9 + 10 * version
    assert {round(top, 4) for v, top in seen if v == 1} == {10.9}
    assert {round(top, 4) for v, top in seen if v == 2} == {20.9}
    states = {(s.version, s.state) for s in status.model_version_status}
    assert states == {
        (1, get_model_status_pb2.ModelVersionStatus.END),
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
    }
    assert server.served_versions("retrieval") == (2,)


def test_half_written_folders_are_never_loaded(server, model_base, retrieval_templates):
    shutil.copytree(os.path.join(retrieval_templates[2], "variables"), model_base / "3" / "variables")
    shutil.copytree(retrieval_templates[2], model_base / "tmp-4")
    shutil.copytree(retrieval_templates[2], model_base / ".5")
    shutil.copytree(retrieval_templates[2], model_base / "tmp6")
    assert list_version_folders(str(model_base)) == [1]
    # poll_once is the poller's whole scan (under the same per-model lock): run it here, twice,
    # instead of waiting for the thread
    server.poll_once()
    server.poll_once()
    assert server.served_versions("retrieval") == (1,)
    # once saved_model.pb lands (the rename of a complete export), version 3 is picked up
    shutil.copy(os.path.join(retrieval_templates[2], "saved_model.pb"), model_base / "3")
    server.poll_once()
    assert server.served_versions("retrieval") == (3,)


def test_failed_warmup_keeps_the_old_version(server, model_base, retrieval_templates):
    tmp = model_base / "tmp-2"
    shutil.copytree(retrieval_templates[2], tmp)
    write_warmup_requests(tmp, "retrieval", [{"no_such_input": np.array([b"1"])}])
    os.rename(tmp, model_base / "2")
    server.poll_once()
    assert server.served_versions("retrieval") == (1,)
    channel, predictions, models = _stubs(server)
    with channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "retrieval"
        statuses = {
            s.version: s for s in models.GetModelStatus(request, timeout=RPC_DEADLINE).model_version_status
        }
        assert (
            predictions.Predict(_request(user_id=_users("1")), timeout=RPC_DEADLINE).model_spec.version.value
            == 1
        )
    assert statuses[2].state == get_model_status_pb2.ModelVersionStatus.END
    assert "warmup request 0 failed: INVALID_ARGUMENT" in statuses[2].status.error_message
    assert statuses[1].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_config_file_with_specific_policy_and_container_paths(tmp_path, retrieval_templates):
    for version in (1, 2):
        shutil.copytree(retrieval_templates[version], tmp_path / "retrieval" / str(version))
    config = write_models_config(tmp_path, ["retrieval"], version_policy=[1])
    with LocalModelServer.from_config_file(config, grpc_port=0, rest_port=None) as server:
        assert server.served_versions("retrieval") == (1,)
        assert server.rest_port is None
    latest = write_models_config(tmp_path, ["retrieval"])
    with LocalModelServer.from_config_file(latest, grpc_port=0, rest_port=None) as server:
        assert server.served_versions("retrieval") == (2,)


def test_constructor_rejects_ambiguous_sources(tmp_path):
    with pytest.raises(ConfigError, match="Give exactly one of model_config_file"):
        LocalModelServer()
    with pytest.raises(ConfigError, match="Give exactly one of model_config_file"):
        LocalModelServer(tmp_path / "models.config", model_base_path=tmp_path)
    with pytest.raises(ConfigError, match="poll_interval_s=0 must be > 0"):
        LocalModelServer(model_base_path=tmp_path, poll_interval_s=0)


def _http(server, path, body=None):
    url = f"http://127.0.0.1:{server.rest_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=RPC_DEADLINE) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rest_row_and_columnar_forms(server, retrieval_fixture):
    ids, scores = retrieval_fixture.reference_recommend(["1", "3"], 1, k=2)
    status, rows = _http(
        server, "/v1/models/retrieval:predict", {"instances": [{"user_id": "1"}, {"user_id": "3"}]}
    )
    assert status == 200
    five = retrieval_fixture.reference_recommend(["1", "3"], 1)[0].tolist()
    assert [r["item_ids"] for r in rows["predictions"]] == five
    status, cols = _http(
        server,
        "/v1/models/retrieval/versions/1:predict",
        {"signature_name": "serving_default", "inputs": {"user_id": ["1", "3"], "k": 2}},
    )
    assert status == 200
    assert cols["outputs"]["item_ids"] == ids.tolist()
    np.testing.assert_allclose(cols["outputs"]["scores"], scores)
    assert cols["outputs"]["scores"][0][0] == 10.9  # float32 printed as its shortest repr


def test_rest_status_and_metadata(server):
    assert _http(server, "/v1/models/retrieval") == (
        200,
        {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        },
    )
    status, metadata = _http(server, "/v1/models/retrieval/versions/1/metadata")
    assert status == 200
    assert metadata["model_spec"]["version"] == "1"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sorted(signature["inputs"]) == ALIASES
    assert signature["inputs"]["user_id"]["dtype"] == "DT_STRING"


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/v1/models/nope:predict", {"inputs": {"user_id": ["1"]}}, 404, "Latest(nope)"),
        (
            "/v1/models/retrieval/versions/9:predict",
            {"inputs": {"user_id": ["1"]}},
            404,
            "Specific(retrieval, 9)",
        ),
        (
            "/v1/models/retrieval:predict",
            {"signature_name": "x", "inputs": {"user_id": ["1"]}},
            400,
            'Serving signature name: "x" not found in signature def',
        ),
        (
            "/v1/models/retrieval:predict",
            {"inputs": {"user_id": [1]}},
            400,
            "expected a string, got 1",
        ),
        (
            "/v1/models/retrieval:predict",
            {"inputs": {"user_id": ["1"], "k": 2.5}},
            400,
            "expected an integer",
        ),
        (
            "/v1/models/retrieval:predict",
            {"instances": [{"user_id": "1", "k": 2}]},
            400,
            "input 'k' has shape [1]",
        ),
        (
            "/v1/models/retrieval:predict",
            {"inputs": {"user_id": ["1"], "recent_item_ids": [["1"], []]}},
            400,
            "ragged list",
        ),
        (
            "/v1/models/retrieval:predict",
            {"instances": [{"user_id": "1"}], "inputs": {}},
            400,
            "exactly one of",
        ),
        ("/v1/models/retrieval:classify", {"examples": []}, 501, "classify is not implemented"),
        ("/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ],
)
def test_rest_errors_map_to_http_codes(server, path, body, code, message):
    status, answer = _http(server, path, body)
    assert status == code
    assert message in answer["error"]
    assert _http(server, "/v1/models/retrieval:predict", {"inputs": {"user_id": ["1"]}})[0] == 200


def test_serves_a_model_with_classic_tf_text_ops(tmp_path):
    import tensorflow_text as tf_text

    class Lower(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            return {"folded": tf_text.case_fold_utf8(text)}

    module = Lower()
    tf.saved_model.save(module, str(tmp_path / "lower" / "1"), signatures={"serving_default": module.serve})
    with LocalModelServer(
        model_name="lower", model_base_path=str(tmp_path / "lower"), port=0, rest_port=None
    ) as srv:
        channel, predictions, _ = _stubs(srv)
        with channel:
            response = predictions.Predict(
                _request(model="lower", text=np.array([b"Hello W\xc3\x96RLD"], object)), timeout=10
            )
    assert _outputs(response)["folded"].tolist() == ["hello wörld".encode()]


def test_busy_ports_are_config_errors_and_nothing_is_left_running(server, model_base):
    busy_grpc = LocalModelServer(model_base_path=str(model_base), port=server.grpc_port, rest_port=None)
    with pytest.raises(ConfigError, match=f"cannot bind gRPC to 127.0.0.1:{server.grpc_port}"):
        busy_grpc.start()
    busy_rest = LocalModelServer(model_base_path=str(model_base), port=0, rest_port=server.rest_port)
    with pytest.raises(ConfigError, match=f"cannot bind REST to 127.0.0.1:{server.rest_port}"):
        busy_rest.start()
    assert busy_rest.grpc_port is None  # its gRPC server was stopped again
