"""Tests for the exported retrieval graph: parity with the in-memory model, in a fresh process.

The SavedModel is loaded by a subprocess that imports only TensorFlow (never tfrec_llm), the
way TF Serving or a user's script would, and its top-K must equal a numpy ranking of the
in-memory model's scores with the user's history excluded.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_llm.config import ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.errors import ExportError
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.saved_model import write_saved_model
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.models.scorer import TwoTowerScorer

_LOADER = r"""
import json, sys
import tensorflow as tf
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
requests = json.loads(sys.argv[2])
answers = []
for r in requests:
    out = fn(
        user_id=tf.constant(r["users"]),
        recent_item_ids=tf.constant(r["recent"]) if r.get("recent") else tf.zeros([0, 0], tf.string),
        exclude_item_ids=tf.constant(r["exclude"]) if r.get("exclude") else tf.zeros([0, 0], tf.string),
        k=tf.constant(r["k"], tf.int32),
    )
    answers.append({"item_ids": out["item_ids"].numpy().astype(str).tolist(),
                    "scores": out["scores"].numpy().tolist(),
                    "used_fallback": out["used_fallback"].numpy().tolist()})
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
print(json.dumps(answers))
"""


@pytest.fixture()
def exported(tiny_dataset, tmp_path):
    split = make_split(tiny_dataset, "loo")
    catalog = build_catalog(tiny_dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model = build_two_tower(ModelConfig(embedding_dim=8, history_length=4), catalog, text)
    histories = split.train_valid.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()
    module = RetrievalModule(model, catalog, histories, default_k=3, max_k=7)
    path = write_saved_model(module, {"serving_default": module.serve}, str(tmp_path), "retrieval", version=1)
    return path, model, catalog, histories


def _run_loader(path, requests):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", _LOADER, path, json.dumps(requests)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _reference_top_k(scores, catalog, exclude, k):
    scores = scores.copy()
    scores[catalog.item_index(list(exclude))] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [str(catalog.item_ids[i]) for i in order], scores[order]


_USERS = ["1", "7", "33"]
_REQUESTS = [
    {"users": _USERS, "k": 5},
    {"users": ["nobody", ""], "k": 4},
    {"users": ["nobody"], "k": 4, "recent": [["3", "5"]]},
    {"users": ["1"], "k": 4, "exclude": [["", "2"]]},
    {"users": ["1"], "k": 1000},
]


def test_fresh_process_answers(exported):
    """One fresh process answers every request; each block below checks one behaviour."""
    path, model, catalog, histories = exported
    answers = _run_loader(path, _REQUESTS)

    # 1. known users: top-K equals the in-memory model's ranking with the history excluded
    users, answer = _USERS, answers[0]
    scorer = TwoTowerScorer(model, catalog)
    scores = scorer.score(np.array(users, dtype=object), [np.array(histories[u]) for u in users])
    for row, user in enumerate(users):
        ids, ref_scores = _reference_top_k(scores[row], catalog, histories[user], 5)
        assert answer["item_ids"][row] == ids
        np.testing.assert_allclose(answer["scores"][row], ref_scores, rtol=1e-4, atol=1e-5)
        assert not set(answer["item_ids"][row]) & set(histories[user])
    assert answer["used_fallback"] == [False, False, False]

    # 2. an unknown (or empty) user id gets the popularity ranking, flagged as a fallback
    popular = [str(catalog.item_ids[i]) for i in np.argsort(-catalog.popularity, kind="stable")[:4]]
    assert answers[1]["item_ids"] == [popular, popular]
    assert answers[1]["used_fallback"] == [True, True]
    # 3. with recent items the unknown user is scored by the model and those items are excluded
    assert answers[2]["used_fallback"] == [False]
    assert not {"3", "5"} & set(answers[2]["item_ids"][0])
    # 4. exclude_item_ids removes more items ("" is padding)
    assert "2" not in answers[3]["item_ids"][0]
    # 5. k is capped at max_k
    assert len(answers[4]["item_ids"][0]) == 7


def test_signature_records_defaults_for_optional_inputs(exported):
    path = exported[0]
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    sig = proto.meta_graphs[0].signature_def["serving_default"]
    assert set(sig.inputs) == {"user_id", "recent_item_ids", "exclude_item_ids", "k"}
    assert set(sig.outputs) == {"item_ids", "scores", "used_fallback"}
    assert set(sig.defaults) == {"recent_item_ids", "exclude_item_ids", "k"}
    assert tf.make_ndarray(sig.defaults["k"]) == 3
    assert tf.make_ndarray(sig.defaults["recent_item_ids"]).shape == (0, 0)


def test_export_passes_the_tf_serving_op_scan(exported):
    assert check_servable(exported[0]).ok


def test_export_is_atomic_and_versions_are_immutable(exported, tmp_path):
    path, model, catalog, histories = exported
    module = RetrievalModule(model, catalog, histories)

    def failing_check(tmp_dir):
        assert os.path.exists(os.path.join(tmp_dir, "saved_model.pb"))
        raise ExportError("check failed on purpose")

    with pytest.raises(ExportError, match="on purpose"):
        write_saved_model(
            module, {"serving_default": module.serve}, str(tmp_path), "retrieval", 2, failing_check
        )
    assert sorted(os.listdir(tmp_path / "retrieval")) == ["1"]  # no version 2, no temp folder left
    with pytest.raises(ExportError, match="exists already"):
        write_saved_model(module, {"serving_default": module.serve}, str(tmp_path), "retrieval", version=1)


def test_every_top_k_waits_for_the_k_check(exported):
    """k = -3 must fail with our message, never TopKV2's "Need k >= 0" (a CI run saw that)."""
    from tests.export.graph_order import unchecked_top_k

    found = unchecked_top_k(exported[0])
    assert found, "no function of the export carries the k >= 1 check"
    assert all(not nodes for nodes in found.values()), found
