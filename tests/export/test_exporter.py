"""Tests of tfrec_llm.export.exporter.export_all: what a TF Serving deployment gets.

One real export (module-scoped, it is the slow part) of a two-tower model built on the tiny
clustered data set (``tests/conftest.py``) with synthetic text embeddings, plus the item encoder
of the tiny random BERT folder (``tests/models/conftest.py``). The checks are the ones a model
server makes: both version folders, ``models.config``, the warmup requests replayed against
``tf.saved_model.load``, the op scan, and TensorFlow's own ``saved_model_cli`` in a fresh process
that never imports tfrec_llm.

``saved_model_cli run`` cannot run the item encoder by itself: its classic TF Text ops
(``CaseFoldUTF8``, ``WordpieceTokenizeWithOffsets``, ...) register only when ``tensorflow_text``
is imported ("Op type not registered 'CaseFoldUTF8'"), while the ``tensorflow_model_server``
binary links them. So all four commands (show/run x two models) run in ONE fresh Python (one
TensorFlow import instead of four) that calls ``saved_model_cli.main``, the function the
``saved_model_cli`` console script runs, with the command line of each; it imports
``tensorflow_text`` only after the retrieval commands, which therefore need no TF Text.
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
from tensorflow.core.protobuf import saved_model_pb2

from tfrec_llm.config import ExperimentConfig, ExportConfig, ModelConfig, TextConfig
from tfrec_llm.data.catalog import build_catalog
from tfrec_llm.data.splits import make_split
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.prepare import item_texts, user_histories
from tfrec_llm.export.exporter import ITEM_ENCODER, RETRIEVAL, export_all
from tfrec_llm.export.models_config import read_models_config
from tfrec_llm.export.op_scan import check_servable
from tfrec_llm.export.warmup import read_warmup_requests

TESTS = Path(__file__).resolve().parents[1]
DEFAULT_K, MAX_K, MAX_LENGTH = 3, 7, 16


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
_MODELS = _DATA  # the tiny BERT fixtures (tiny_bert_dir, TINY_HIDDEN) moved to tests/conftest.py
tiny_bert_dir = _MODELS.tiny_bert_dir  # the session fixture of tests/models, reused here


@pytest.fixture(scope="module")
def export(tmp_path_factory, tiny_bert_dir):
    dataset = _DATA.make_clustered_dataset()
    cfg = ExperimentConfig(
        model=ModelConfig(embedding_dim=8, history_length=4),
        text=TextConfig(model_path=tiny_bert_dir, max_length=MAX_LENGTH),
        export=ExportConfig(default_k=DEFAULT_K, max_k=MAX_K),
    )
    split = make_split(dataset, "loo")
    catalog = build_catalog(dataset, split)
    text = np.random.default_rng(1).normal(size=(catalog.num_items, 6)).astype(np.float32)
    model = build_two_tower(cfg.model, catalog, text)
    histories = user_histories(split.train_valid)
    texts = item_texts(dataset, split.item_ids, cfg.text.template)
    export_dir = tmp_path_factory.mktemp("exports")
    result = export_all(cfg, model, catalog, histories, str(export_dir), tiny_bert_dir, texts)
    return {
        "result": result,
        "dir": export_dir,
        "catalog": catalog,
        "histories": histories,
        "texts": texts,
        "bert": tiny_bert_dir,
    }


def _signature_def(version_dir: str) -> saved_model_pb2.SignatureDef:
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    (graph,) = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags]
    return graph.signature_def["serving_default"]


def _replay(version_dir: str) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Replays the warmup file the way TF Serving does: missing inputs from SignatureDef.defaults.

    (The Python ``signatures[...]`` wrapper does not apply the defaults, so they are filled here
    from the SignatureDef, independently of the local server's code.)
    """
    signature = _signature_def(version_dir)
    function = tf.saved_model.load(version_dir).signatures["serving_default"]
    answers = []
    for request in read_warmup_requests(version_dir):
        assert request.model_spec.signature_name == "serving_default"
        assert request.model_spec.name == os.path.basename(os.path.dirname(version_dir))
        inputs = {alias: tf.make_ndarray(t) for alias, t in request.inputs.items()}
        assert set(inputs) <= set(signature.inputs)
        feed = {**{a: tf.make_ndarray(t) for a, t in signature.defaults.items()}, **inputs}
        assert set(feed) == set(signature.inputs)
        kwargs = {
            alias: tf.constant(value, dtype=tf.dtypes.as_dtype(signature.inputs[alias].dtype))
            for alias, value in feed.items()
        }
        outputs = {k: v.numpy() for k, v in function(**kwargs).items()}
        answers.append((inputs, outputs))
    return answers


def test_both_models_are_published_under_one_version(export):
    result, export_dir = export["result"], export["dir"]
    assert sorted(os.listdir(export_dir)) == ["item_encoder", "models.config", "retrieval", "serving.env"]
    env = (export_dir / "serving.env").read_text(encoding="utf-8").splitlines()
    assert "TF_SERVING_TAG=2.20.0" in env  # export.tf_serving_version -> the compose image tag
    versions = {name: os.listdir(export_dir / name) for name in (RETRIEVAL, ITEM_ENCODER)}
    assert len(versions[RETRIEVAL]) == 1 and versions[RETRIEVAL] == versions[ITEM_ENCODER]
    (version,) = versions[RETRIEVAL]
    assert version.isdigit()
    assert result.retrieval == str(export_dir / RETRIEVAL / version)
    assert result.item_encoder == str(export_dir / ITEM_ENCODER / version)
    for folder in (result.retrieval, result.item_encoder):
        assert os.path.isfile(os.path.join(folder, "saved_model.pb"))
        assert os.path.isfile(os.path.join(folder, "assets.extra", "tf_serving_warmup_requests"))


def test_models_config_lists_both_models(export):
    result, export_dir = export["result"], export["dir"]
    assert result.models_config == str(export_dir / "models.config")
    entries = read_models_config(result.models_config)
    assert [e.name for e in entries] == [RETRIEVAL, ITEM_ENCODER]
    assert [e.base_path for e in entries] == ["/models/retrieval", "/models/item_encoder"]
    assert [e.local_path for e in entries] == [str(export_dir / n) for n in (RETRIEVAL, ITEM_ENCODER)]
    assert {e.policy for e in entries} == {"latest"}


def test_retrieval_warmup_requests_succeed_in_process(export):
    catalog, histories = export["catalog"], export["histories"]
    answers = _replay(export["result"].retrieval)
    assert answers
    item_ids = {str(i) for i in catalog.item_ids}
    for inputs, outputs in answers:
        users = [u.decode() for u in inputs["user_id"]]
        k = int(inputs["k"]) if "k" in inputs else DEFAULT_K
        assert outputs["item_ids"].shape == (len(users), k)
        assert outputs["scores"].shape == (len(users), k)
        for user, row, scores, fallback in zip(
            users, outputs["item_ids"], outputs["scores"], outputs["used_fallback"], strict=True
        ):
            row = [i.decode() for i in row]
            assert set(row) <= item_ids and len(set(row)) == k
            assert np.all(np.diff(scores) <= 0)  # best first
            assert not set(row) & set(histories.get(user, []))  # seen items are excluded
            assert bool(fallback) == (user not in histories)
    # the export warms up a known-users batch and an unknown user
    assert any(not o["used_fallback"].any() for _, o in answers)
    assert any(o["used_fallback"].all() for _, o in answers)


def test_item_encoder_warmup_requests_succeed_in_process(export):
    from tfrec_llm.text.encoder import TextEncoder, encode_texts

    answers = _replay(export["result"].item_encoder)
    assert len(answers) == 1
    inputs, outputs = answers[0]
    texts = [t.decode() for t in inputs["text"]]
    assert texts == list(export["texts"][:8])
    embedding = outputs["embedding"]
    assert embedding.shape == (8, _MODELS.TINY_HIDDEN)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, rtol=1e-5)
    # the in-graph tokenizer + BERT equal the in-process encoder (host-side tokenization)
    local = encode_texts(TextEncoder(export["bert"], max_length=MAX_LENGTH), texts)
    np.testing.assert_allclose(embedding, local, atol=1e-5)


def test_both_exports_pass_the_tf_serving_op_scan(export):
    for folder in (export["result"].retrieval, export["result"].item_encoder):
        assert check_servable(folder).ok
        assert check_servable(folder, tf_serving_version="2.20.0").ok  # the default target


README_LOAD_SENTENCE = (
    "Both exports load with plain `tf.saved_model.load` (no tfrec_llm import); `item_encoder` fails\n"
    "with `Op type not registered 'CaseFoldUTF8'` unless `tensorflow_text` is imported first"
)

_PLAIN_LOAD = r"""
import json, sys
import tensorflow as tf
retrieval, encoder = sys.argv[1:3]
out = {"retrieval": sorted(tf.saved_model.load(retrieval).signatures)}
assert "tensorflow_text" not in sys.modules and "tfrec_llm" not in sys.modules
try:
    tf.saved_model.load(encoder)
    out["encoder_without_tf_text"] = "loaded"
except Exception as exc:
    out["encoder_without_tf_text"] = f"{type(exc).__name__}: {exc}"
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(encoder)
embedding = loaded.signatures["serving_default"](text=tf.constant(["a space movie"]))["embedding"]
out["encoder_with_tf_text"] = list(embedding.shape)
print("@@" + json.dumps(out))
"""


def test_readme_sentence_on_plain_loading_holds_in_a_fresh_process(export):
    readme = (TESTS.parent / "README.md").read_text(encoding="utf-8")
    assert README_LOAD_SENTENCE in readme
    result = subprocess.run(
        [sys.executable, "-c", _PLAIN_LOAD, export["result"].retrieval, export["result"].item_encoder],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    out = json.loads(lines[0][2:])
    assert out["retrieval"] == ["serving_default"]
    assert "Op type not registered 'CaseFoldUTF8'" in out["encoder_without_tf_text"]
    assert out["encoder_with_tf_text"][0] == 1


# ------------------------------------------------------------- saved_model_cli, fresh process

_CLI = r"""
import json, sys
from tensorflow.python.tools import saved_model_cli  # what the saved_model_cli script runs
for argv in json.loads(sys.argv[1]):
    if argv == ["import tensorflow_text"]:
        # registers the classic TF Text ops, which the tensorflow_model_server binary links
        import tensorflow_text
        continue
    print("=== saved_model_cli " + " ".join(argv[:3]), flush=True)
    sys.argv = ["saved_model_cli", *argv]
    try:
        saved_model_cli.main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
assert not any(m.startswith("tfrec_llm") for m in sys.modules), "imported tfrec_llm"
"""


def _run_args(version_dir: str, exprs: str, outdir: Path) -> list[str]:
    return [
        "run", "--dir", version_dir, "--tag_set", "serve", "--signature_def", "serving_default",
        "--input_exprs", exprs, "--outdir", str(outdir),
    ]  # fmt: skip


def test_saved_model_cli_shows_and_runs_both_exports_in_a_fresh_process(export, tmp_path):
    retrieval, encoder = export["result"].retrieval, export["result"].item_encoder
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # `recent_item_ids=[[""]]` would be one row for two users, which the graph rejects
    # ("must have one row per user_id"); "" ids are padding, so [[""], [""]] means "none".
    exprs = 'user_id=["1","2"];recent_item_ids=[[""],[""]];exclude_item_ids=[[""],[""]];k=3'
    steps = [
        ["show", "--dir", retrieval, "--all"],
        _run_args(retrieval, exprs, tmp_path / "r"),
        ["import tensorflow_text"],  # only now: retrieval must not need TF Text
        ["show", "--dir", encoder, "--all"],
        _run_args(encoder, 'text=["a movie","space rocket adventure"]', tmp_path / "e"),
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _CLI, json.dumps(steps)],
        cwd="/", env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    out = dict(
        zip(
            ["retrieval show", "retrieval run", "item_encoder show", "item_encoder run"],
            proc.stdout.split("=== saved_model_cli ")[1:],
            strict=True,
        )
    )

    shown = out["retrieval show"]
    assert "signature_def['serving_default']:" in shown
    for alias in ("user_id", "recent_item_ids", "exclude_item_ids", "k"):
        assert f"inputs['{alias}'] tensor_info:" in shown
    assert "Method name is: tensorflow/serving/predict" in shown
    shown = out["item_encoder show"]
    assert "inputs['text'] tensor_info:" in shown and "outputs['embedding'] tensor_info:" in shown
    assert f"shape: (-1, {_MODELS.TINY_HIDDEN})" in shown

    # the CLI's answers equal the in-process signature's
    function = tf.saved_model.load(retrieval).signatures["serving_default"]
    padding = tf.constant([[""], [""]])
    expected = function(
        user_id=tf.constant(["1", "2"]), recent_item_ids=padding, exclude_item_ids=padding,
        k=tf.constant(3, tf.int32),
    )  # fmt: skip
    got_ids = np.load(tmp_path / "r" / "item_ids.npy", allow_pickle=True)
    assert got_ids.tolist() == expected["item_ids"].numpy().tolist()
    np.testing.assert_allclose(np.load(tmp_path / "r" / "scores.npy"), expected["scores"].numpy(), rtol=1e-5)
    assert got_ids.shape == (2, 3)
    assert not {i.decode() for i in got_ids[0]} & set(export["histories"]["1"])
    embedding = np.load(tmp_path / "e" / "embedding.npy")
    expected = (
        tf.saved_model.load(encoder)
        .signatures["serving_default"](text=tf.constant(["a movie", "space rocket adventure"]))["embedding"]
        .numpy()
    )
    assert embedding.shape == (2, _MODELS.TINY_HIDDEN)
    np.testing.assert_allclose(embedding, expected, atol=1e-5)
