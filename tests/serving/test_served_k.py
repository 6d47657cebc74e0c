"""The served ``k`` of the real retrieval export: k <= 0 is a bad request, k > max_k is capped.

Before the fix the graph clipped k into [1, max_k], so ``k = 0`` or ``k = -3`` silently
answered one item. TF Serving passes an op's INVALID_ARGUMENT through to the client, so the
check lives in the graph and works the same in ``tensorflow/serving`` and the local server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfrec_llm.config import ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.export.saved_model import write_saved_model
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.serving.local import LocalModelServer

MAX_K = 7
DEADLINE = 120  # seconds: generous for a busy machine; every answer here comes in well under 1 s


_CACHE: dict[str, tuple[LocalModelServer, str]] = {}  # one export and server for the module


@pytest.fixture(scope="module", autouse=True)
def _stop_the_cached_server():
    yield
    if "served" in _CACHE:
        _CACHE.pop("served")[0].stop()


@pytest.fixture()
def served(tiny_dataset, tmp_path_factory):
    """(server, a known user id): the real retrieval export served locally, built once."""
    if "served" not in _CACHE:
        root = tmp_path_factory.mktemp("served_k")
        split = make_split(tiny_dataset, "loo")
        catalog = build_catalog(tiny_dataset, split)
        text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
        model = build_two_tower(ModelConfig(embedding_dim=8, history_length=4), catalog, text)
        histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
        module = RetrievalModule(model, catalog, histories, default_k=3, max_k=MAX_K)
        assert catalog.num_items > MAX_K  # so the cap, not the catalog size, decides below
        write_saved_model(module, {"serving_default": module.serve}, str(root), "retrieval", version=1)
        server = LocalModelServer(
            model_base_path=str(root / "retrieval"), port=0, rest_port=0, poll_interval_s=3600
        ).start()
        _CACHE["served"] = (server, str(next(iter(histories))))
    return _CACHE["served"]


def _grpc_predict(server, user, k):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "retrieval"
    request.inputs["user_id"].CopyFrom(tf.make_tensor_proto(np.array([user.encode()], dtype=object)))
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(np.int32(k)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=DEADLINE
        )
    return tf.make_ndarray(response.outputs["item_ids"])


@pytest.mark.parametrize("k", [0, -3])
def test_k_below_one_is_invalid_argument_over_grpc_and_400_over_rest(served, k):
    server, user = served
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_predict(server, user, k)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "k must be >= 1" in caught.value.details()
    body = json.dumps({"inputs": {"user_id": [user], "k": k}}).encode()
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/retrieval:predict"
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=DEADLINE)
    assert http.value.code == 400
    assert "k must be >= 1" in json.loads(http.value.read())["error"]


def test_k_above_max_k_is_capped_and_the_shape_says_so(served):
    server, user = served
    assert _grpc_predict(server, user, 1).shape == (1, 1)
    assert _grpc_predict(server, user, MAX_K).shape == (1, MAX_K)
    assert _grpc_predict(server, user, 100_000).shape == (1, MAX_K)
