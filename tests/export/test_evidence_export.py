"""The optional evidence outputs of the exported retrieval signature (issue 14, item 1).

``export.evidence_items = e > 0`` adds ``evidence_item_ids`` / ``evidence_scores`` [batch, k, e]:
for each recommended item, the e distinct items of the history window the query read that are
the most cosine-similar to it by candidate embedding. In process, the module's answers must
equal `tfrec_llm.models.evidence.history_contributions` (the similarity source) on the
``small_two_tower`` fixture; a fresh process that never imports tfrec_llm loads both exports
and sees the outputs only when they are on, and the op scan stays clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import ExperimentConfig, ExportConfig
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.prepare import user_histories
from tfrec_llm.export.exporter import export_retrieval
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.serving_module import RetrievalModule
from tfrec_llm.models.evidence import cosine_to_item, history_contributions

E, K = 3, 4

_LOADER = r"""
import json, sys
import tensorflow as tf
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
answers = {}
for path in sys.argv[1:]:
    fn = tf.saved_model.load(path).signatures["serving_default"]
    out = fn(user_id=tf.constant(["1", "nobody"]), recent_item_ids=tf.zeros([0, 0], tf.string),
             exclude_item_ids=tf.zeros([0, 0], tf.string), k=tf.constant(4, tf.int32))
    answers[path] = {name: {"shape": t.shape.as_list(), "value": t.numpy().astype(str).tolist()
                            if t.dtype == tf.string else t.numpy().tolist()} for name, t in out.items()}
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
print(json.dumps(answers))
"""


def _serve(module, users, recent=None, k=K):
    recent_ids = tf.constant(recent) if recent else tf.zeros([0, 0], tf.string)
    out = module.serve(
        user_id=tf.constant(users),
        recent_item_ids=recent_ids,
        exclude_item_ids=tf.zeros([0, 0], tf.string),
        k=tf.constant(k, tf.int32),
    )
    return {name: t.numpy() for name, t in out.items()}


def _check_against_reference(out, model, catalog, histories, users, e):
    """Every row equals the top-e of history_contributions (similarity) for that recommendation."""
    candidates = model.all_candidate_embeddings()
    for row, user in enumerate(users):
        for col, item in enumerate(out["item_ids"][row].astype(str)):
            ids, weights, source = history_contributions(
                model, catalog, user, histories[user], item, candidates=candidates
            )
            assert source == "similarity"
            expected = [str(catalog.item_ids[i]) for i in ids[:e]]
            got = out["evidence_item_ids"][row, col].astype(str).tolist()
            assert got == expected + [""] * (e - len(expected)), (user, item)
            scores = out["evidence_scores"][row, col]
            np.testing.assert_allclose(scores[: len(expected)], weights[:e], rtol=1e-5, atol=1e-6)
            assert (scores[len(expected) :] == 0.0).all()


def test_evidence_equals_the_python_explanation(tiny_dataset, small_two_tower):
    fixture = small_two_tower(tiny_dataset, history_encoder="gru", encoder_width=8)
    catalog, model = fixture.catalog, fixture.model
    histories = {u: list(h) for u, h in user_histories(fixture.split.train_valid).items()}
    items = [str(i) for i in catalog.item_ids]
    # a repeated item counts once; a user with fewer than E items gets "" / 0.0 slots
    histories["1"] = [items[0], items[3], items[0], items[5]]
    histories["7"] = [items[2], items[2]]
    module = RetrievalModule(model, catalog, histories, default_k=K, max_k=10, evidence_items=E)
    users = ["1", "7", "22", "33"]
    out = _serve(module, users)
    assert out["evidence_item_ids"].shape == (len(users), K, E) == out["evidence_scores"].shape
    _check_against_reference(out, model, catalog, histories, users, E)
    assert (out["evidence_item_ids"][1, :, 1:] == b"").all()  # one distinct item in user 7's history
    for row, user in enumerate(users):  # only items of the user's own window, no padding
        window = set(histories[user][-model.history_length :])
        assert set(out["evidence_item_ids"][row].astype(str).ravel()) - {""} <= window


def test_recent_items_feed_the_evidence_and_an_empty_history_gives_none(tiny_dataset, small_two_tower):
    fixture = small_two_tower(tiny_dataset)
    catalog, model = fixture.catalog, fixture.model
    module = RetrievalModule(model, catalog, {}, default_k=K, max_k=10, evidence_items=E)
    items = [str(i) for i in catalog.item_ids]
    out = _serve(module, ["nobody", "ghost"], recent=[[items[4], "999", "", items[8]], ["", "", "", ""]])
    candidates = model.all_candidate_embeddings()
    window = np.array([8, 4])  # the most recent first: the order of tied weights
    for col, rec in enumerate(out["item_ids"][0].astype(str)):
        cosine = cosine_to_item(candidates, window, items.index(rec))
        order = np.argsort(-cosine, kind="stable")
        assert out["evidence_item_ids"][0, col].astype(str).tolist() == [items[i] for i in window[order]] + [
            ""
        ]
        np.testing.assert_allclose(out["evidence_scores"][0, col, :2], cosine[order], rtol=1e-5, atol=1e-6)
    assert out["used_fallback"].tolist() == [False, True]
    assert (out["evidence_item_ids"][1] == b"").all() and (out["evidence_scores"][1] == 0.0).all()


def test_the_attention_encoder_exports_the_cosine_too(tiny_dataset, small_two_tower):
    fixture = small_two_tower(tiny_dataset, history_encoder="attention", encoder_width=8)
    catalog, model = fixture.catalog, fixture.model
    histories = {u: list(h) for u, h in user_histories(fixture.split.train_valid).items()}
    module = RetrievalModule(model, catalog, histories, default_k=K, max_k=10, evidence_items=2)
    out = _serve(module, ["1"])
    candidates = model.all_candidate_embeddings()
    window = catalog.pad_histories([np.asarray(histories["1"], dtype=object)], model.history_length)[0]
    window = window[window >= 0][::-1]
    _, first = np.unique(window, return_index=True)
    window = window[np.sort(first)]
    for col, rec in enumerate(out["item_ids"][0].astype(str)):
        (target,) = catalog.item_index(np.asarray([rec], dtype=object))
        cosine = cosine_to_item(candidates, window, int(target))
        order = np.argsort(-cosine, kind="stable")[:2]
        expected = [str(catalog.item_ids[i]) for i in window[order]]
        assert out["evidence_item_ids"][0, col].astype(str).tolist()[: len(expected)] == expected


def test_negative_evidence_items_is_a_config_error(tiny_dataset, small_two_tower):
    fixture = small_two_tower(tiny_dataset)
    with pytest.raises(ConfigError, match="export.evidence_items=-1"):
        RetrievalModule(fixture.model, fixture.catalog, {}, evidence_items=-1)


def test_exports_load_in_a_fresh_process_with_the_outputs_only_when_on(
    tiny_dataset, small_two_tower, tmp_path
):
    fixture = small_two_tower(tiny_dataset)
    histories = user_histories(fixture.split.train_valid)
    paths = {}
    for e in (0, 2):
        cfg = ExperimentConfig(export=ExportConfig(default_k=K, max_k=10, evidence_items=e))
        folder = str(tmp_path / f"e{e}")
        paths[e] = export_retrieval(cfg, fixture.model, fixture.catalog, histories, folder, version=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    done = subprocess.run(
        [sys.executable, "-c", _LOADER, paths[0], paths[2]],
        capture_output=True, text=True, env=env, cwd="/", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(answers[paths[0]]) == {"item_ids", "scores", "used_fallback"}
    on = answers[paths[2]]
    assert set(on) == {"item_ids", "scores", "used_fallback", "evidence_item_ids", "evidence_scores"}
    assert on["evidence_item_ids"]["shape"] == on["evidence_scores"]["shape"] == [2, K, 2]
    assert on["item_ids"]["value"] == answers[paths[0]]["item_ids"]["value"]  # same ranking
    assert on["evidence_item_ids"]["value"][1] == [["", ""]] * K  # no history: no evidence
    known = set(histories["1"][-fixture.model.history_length :])
    assert {i for row in on["evidence_item_ids"]["value"][0] for i in row} <= known
    result = check_servable(paths[2])  # (export_retrieval already refuses an unclean export)
    assert (
        result.ok
        and result.unsupported == {}
        and {"ReverseV2", "BatchMatMulV2", "IsFinite"} <= set(result.all_ops)
    )
