"""The sequence query towers inside the exported retrieval SavedModel (issue 9, item 6).

One tiny two-tower model per history encoder (attention, gru, lstm, cnn; untrained, random
weights) is published with the exporter's ``export_retrieval`` (op scan and warmup included).
ONE fresh Python process, which imports TensorFlow but never tfrec_llm, then answers every
request with every export twice: through ``tf.saved_model.load(...).signatures`` and through a
TF1 ``Session`` loaded by ``tf.compat.v1.saved_model.loader`` (graph mode and ``Session::Run`` on
the signature's tensors, as ``tensorflow_model_server`` runs a SavedModel). Its answers must equal a
numpy ranking of the in-process Python model: the query of ``model.query_embedding`` on the
stored history followed by the request's recent items (unknown and "" ids dropped, the last
``history_length`` kept), dotted with ``model.all_candidate_embeddings()``, with the stored
history, the recent items and the excluded items removed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tensorflow as tf

from tfrec_llm.config import ExperimentConfig, ExportConfig, ModelConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.prepare import user_histories
from tfrec_llm.export.exporter import export_retrieval
from tfrec_llm.export.op_scan import check_servable

TESTS = Path(__file__).resolve().parents[1]
HISTORY_LENGTH, DEFAULT_K, MAX_K = 4, 5, 10

# Each encoder also varies one other model field, none of which may change what is served:
# user dropout is training-only, the objective and loss only change training.
MODELS = {
    "attention": {"encoder_blocks": 2, "encoder_heads": 2, "objective": "next_item", "loss": "full_softmax"},
    "gru": {"use_user_ids": False},
    "lstm": {"user_dropout": 0.3},
    "cnn": {},
}
# Ops that only the encoder brings into the graph (a mean-pooling export has none of them).
ENCODER_OPS = {
    "attention": {"Einsum", "Softmax", "Cumsum"},
    "gru": {"StatelessWhile"},
    "lstm": {"StatelessWhile"},
    "cnn": {"Conv2D"},
}

# Requests: users, recent_item_ids ([] = omitted), exclude_item_ids ([] = omitted), k.
# "" is padding and "999" is not in the catalog: both must be dropped from the history.
REQUESTS = {
    "known": (["1", "7", "22", "33"], [], [], DEFAULT_K),
    "known+recent": (["1", "22"], [["3", "5", "8"], ["17", "999", ""]], [], DEFAULT_K),
    "unknown+recent": (["nobody", "ghost"], [["3", "5", "8"], ["", "20", ""]], [], DEFAULT_K),
    "unknown+reversed": (["nobody"], [["8", "5", "3"]], [], DEFAULT_K),
    "long recent": (["1"], [["3", "5", "8", "11", "14", "2"]], [["", "9"]], 7),
    "no history": (["nobody", "1"], [], [], DEFAULT_K),
    "only unknown items": (["ghost"], [["999", ""]], [], DEFAULT_K),
}

_LOADER = r"""
import json, sys
import numpy as np
import tensorflow as tf

assert not any(m.startswith("tfrec_llm") for m in sys.modules)
requests = json.loads(sys.argv[1])

def feed(users, recent, exclude, k):
    ids = lambda rows: np.array(rows, dtype=bytes) if rows else np.zeros([0, 0], bytes)
    return {"user_id": np.array(users, dtype=bytes), "recent_item_ids": ids(recent),
            "exclude_item_ids": ids(exclude), "k": np.array(k, np.int32)}

def plain(out):
    return {"item_ids": np.asarray(out["item_ids"]).astype(str).tolist(),
            "scores": np.asarray(out["scores"]).tolist(),
            "used_fallback": np.asarray(out["used_fallback"]).tolist()}

answers = {}
for line in sys.stdin:  # one [name, path] per line, sent as each export is published
    name, path = json.loads(line)
    fn = tf.saved_model.load(path).signatures["serving_default"]
    eager = {r: plain(fn(**{a: tf.constant(v) for a, v in feed(*q).items()}))
             for r, q in requests.items()}
    with tf.compat.v1.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        fetch = {a: t.name for a, t in sig.outputs.items()}
        session = {r: plain(sess.run(fetch, {sig.inputs[a].name: v for a, v in feed(*q).items()}))
                   for r, q in requests.items()}
    answers[name] = {"eager": eager, "session": session}
assert not any(m.startswith("tfrec_llm") for m in sys.modules)
print(json.dumps(answers))
"""


def _load(path: Path, name: str) -> ModuleType:
    """Imports a conftest file as a plain module (conftest fixtures are directory-scoped)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_DATA = _load(TESTS / "conftest.py", "tfrec_tests_root_conftest")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The data, one export per encoder and the fresh process's answers (the slow part, once)."""
    dataset = _DATA.make_clustered_dataset()
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    histories = user_histories(split.train_valid)
    assert min(len(h) for h in histories.values()) > HISTORY_LENGTH  # truncation matters
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # The fresh process starts first (its TensorFlow import overlaps the exports) and loads
    # each export as soon as it is published; its stderr goes to a file, so it never blocks.
    errors = tmp_path_factory.mktemp("loader") / "stderr.txt"
    with open(errors, "w") as stderr:
        loader = subprocess.Popen(
            [sys.executable, "-c", _LOADER, json.dumps(REQUESTS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd="/",
        )  # fmt: skip
        models, paths = {}, {}
        try:
            for name, fields in MODELS.items():
                model_cfg = ModelConfig(
                    embedding_dim=8,
                    history_length=HISTORY_LENGTH,
                    history_encoder=name,
                    encoder_width=8,
                    encoder_dropout=0.2,
                    **fields,
                )
                cfg = ExperimentConfig(model=model_cfg, export=ExportConfig(default_k=DEFAULT_K, max_k=MAX_K))
                models[name] = build_two_tower(cfg.model, catalog, text)
                folder = str(tmp_path_factory.mktemp(f"export_{name}"))
                paths[name] = export_retrieval(cfg, models[name], catalog, histories, folder, version=1)
                loader.stdin.write(json.dumps([name, paths[name]]) + "\n")
                loader.stdin.flush()
            stdout, _ = loader.communicate(timeout=600)
        finally:
            if loader.poll() is None:
                loader.kill()
                loader.wait()
    assert loader.returncode == 0, errors.read_text()[-3000:]
    answers = json.loads(stdout.strip().splitlines()[-1])
    return {"catalog": catalog, "histories": histories, "models": models, "paths": paths, "answers": answers}


def _history_rows(catalog, histories, users, recent, length):
    """[n, length] catalog indices: stored history + recent, unknown ids dropped, last ``length``."""
    rows = np.full((len(users), length), -1, np.int32)
    for r, user in enumerate(users):
        ids = list(histories.get(user, [])) + (list(recent[r]) if recent else [])
        idx = catalog.item_index(np.asarray(ids, dtype=object)) if ids else np.zeros(0, np.int64)
        idx = idx[idx >= 0][-length:]
        rows[r, length - len(idx) :] = idx
    return rows


def _reference(setup, name, request):
    """(item ids, scores) per user: the Python model's top-k, seen/recent/excluded removed."""
    users, recent, exclude, k = request
    catalog, histories, model = setup["catalog"], setup["histories"], setup["models"][name]
    rows = _history_rows(catalog, histories, users, recent, model.history_length)
    user_index = catalog.user_index(np.asarray(users, dtype=object)).astype(np.int32)
    query = model.query_embedding(tf.constant(user_index), tf.constant(rows)).numpy()
    scores = query @ model.all_candidate_embeddings().T
    out = []
    for r, user in enumerate(users):
        removed = list(histories.get(user, []))
        removed += (list(recent[r]) if recent else []) + (list(exclude[r]) if exclude else [])
        idx = catalog.item_index(np.asarray(removed, dtype=object)) if removed else np.zeros(0, int)
        row = scores[r].copy()
        row[idx[idx >= 0]] = -np.inf
        order = np.argsort(-row, kind="stable")[:k]
        out.append(([str(catalog.item_ids[i]) for i in order], row[order]))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_encoder_equals_the_python_model_in_a_fresh_process(setup, name):
    answers = setup["answers"][name]["eager"]
    for label in ("known", "known+recent", "unknown+recent", "unknown+reversed", "long recent"):
        users, recent, exclude, _ = REQUESTS[label]
        answer = answers[label]
        assert answer["used_fallback"] == [False] * len(users), label
        for row, (ids, scores) in enumerate(_reference(setup, name, REQUESTS[label])):
            assert answer["item_ids"][row] == ids, (label, row)
            np.testing.assert_allclose(answer["scores"][row], scores, rtol=1e-5, atol=1e-5, err_msg=label)
            shown = set(answer["item_ids"][row])
            assert not shown & set(setup["histories"].get(users[row], [])), label
            assert not shown & set(recent[row] if recent else []), label
            assert not shown & set(exclude[row] if exclude else []), label


@pytest.mark.parametrize("name", list(MODELS))
def test_the_order_of_the_recent_items_matters(setup, name):
    """A sequence encoder (not mean pooling) made the query: reversing the items changes it."""
    answers = setup["answers"][name]["eager"]
    forward, backward = answers["unknown+recent"], answers["unknown+reversed"]
    same_ids = forward["item_ids"][0] == backward["item_ids"][0]
    assert not (same_ids and np.allclose(forward["scores"][0], backward["scores"][0], atol=1e-6))


@pytest.mark.parametrize("name", list(MODELS))
def test_unknown_user_without_history_gets_the_popularity_fallback(setup, name):
    catalog, answers = setup["catalog"], setup["answers"][name]["eager"]
    order = np.argsort(-catalog.popularity, kind="stable")[:DEFAULT_K]
    popular = [str(catalog.item_ids[i]) for i in order]
    expected = catalog.popularity[order] / catalog.popularity.max()

    no_history = answers["no history"]
    assert no_history["used_fallback"] == [True, False]
    assert no_history["item_ids"][0] == popular
    np.testing.assert_allclose(no_history["scores"][0], expected, rtol=1e-6)
    # the known user of the same batch is still served by the model
    assert no_history["item_ids"][1] == answers["known"]["item_ids"][0]
    # recent items that are all unknown or padding leave the history empty: fallback too
    assert answers["only unknown items"]["used_fallback"] == [True]
    assert answers["only unknown items"]["item_ids"][0] == popular


@pytest.mark.parametrize("name", list(MODELS))
def test_the_session_loader_of_tf_serving_gives_the_same_answers(setup, name):
    eager, session = setup["answers"][name]["eager"], setup["answers"][name]["session"]
    assert set(eager) == set(session) == set(REQUESTS)
    for label in REQUESTS:
        assert session[label]["item_ids"] == eager[label]["item_ids"], label
        assert session[label]["used_fallback"] == eager[label]["used_fallback"], label
        np.testing.assert_allclose(session[label]["scores"], eager[label]["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_export_passes_the_op_scan_and_holds_the_encoder(setup, name):
    result = check_servable(setup["paths"][name])
    assert result.ok and result.unsupported == {}
    assert {u.category for u in result.ops} == {"core"}
    assert ENCODER_OPS[name] <= set(result.all_ops)
