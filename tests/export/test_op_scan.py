"""Tests of tfrec_llm.export.op_scan, plus saved_model_cli on the same SavedModel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ExportError
from tfrec_llm.export.op_scan import (
    GRAPH_SCOPE,
    check_servable,
    classify_op,
    scan_saved_model,
)


def _save_module(path, fn):
    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x):
            return {"y": fn(x)}

    module = M()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


def _with_extra_op(src, dst, op_type):
    """Copies a SavedModel and adds one node of ``op_type`` to its first library function."""
    shutil.copytree(src, dst)
    model = saved_model_pb2.SavedModel()
    with open(os.path.join(dst, "saved_model.pb"), "rb") as f:
        model.ParseFromString(f.read())
    function = model.meta_graphs[0].graph_def.library.function[0]
    node = function.node_def.add()
    node.name, node.op = "injected", op_type
    with open(os.path.join(dst, "saved_model.pb"), "wb") as f:
        f.write(model.SerializeToString())
    return str(dst), function.signature.name


def test_retrieval_fixture_is_servable_and_lists_its_ops(retrieval_v1):
    result = check_servable(retrieval_v1)
    assert result.ok and result.unsupported == {}
    assert list(result.all_ops) == sorted(result.all_ops)
    # ops the fixture's graph certainly uses (hash table lookup, top-k, the signature call)
    for op in ("LookupTableFindV2", "TopKV2", "StatefulPartitionedCall", "Placeholder"):
        assert op in result.all_ops
    assert {u.category for u in result.ops} == {"core"}
    placeholder = next(u for u in result.ops if u.op == "Placeholder")
    assert GRAPH_SCOPE in placeholder.functions


def test_py_function_is_named_with_its_function(tmp_path):
    path = _save_module(tmp_path / "py", lambda x: tf.py_function(lambda v: v * 2, [x], tf.float32))
    result = scan_saved_model(path)
    assert not result.ok
    assert list(result.unsupported) == ["EagerPyFunc"]
    assert any(f.startswith("__inference") for f in result.unsupported["EagerPyFunc"])
    with pytest.raises(ExportError, match=r"unsupported op\(s\): EagerPyFunc\b.*Python"):
        check_servable(path)


def test_numpy_function_is_pyfunc_and_forbidden(tmp_path):
    path = _save_module(
        tmp_path / "np",
        lambda x: tf.numpy_function(lambda v: (v * 2).astype(np.float32), [x], tf.float32),
    )
    with pytest.raises(ExportError, match=r"PyFunc \[forbidden"):
        check_servable(path)


@pytest.mark.parametrize(
    ("op", "category", "reason"),
    [
        ("FastBertNormalize", "forbidden", "tensorflow/serving#2064"),
        ("FastWordpieceTokenizeWithOffsets", "forbidden", "use_fast_bert_tokenizer=False"),
        ("ScannSearchBatched", "forbidden", "ScaNN"),
        ("SentencepieceOp", "tf_text_unverified", "not verified"),
        ("MyCustomKernel", "unknown", "custom op library"),
    ],
)
def test_injected_unservable_ops_are_reported(retrieval_v1, tmp_path, op, category, reason):
    path, function = _with_extra_op(retrieval_v1, tmp_path / "m", op)
    result = scan_saved_model(path)
    assert result.unsupported == {op: (function,)}
    assert next(u for u in result.ops if u.op == op).category == category
    with pytest.raises(ExportError, match=rf"{op} \[{category}: .*{reason}.*used in {function}"):
        check_servable(path)


def test_classic_tf_text_op_is_servable(retrieval_v1, tmp_path):
    path, _ = _with_extra_op(retrieval_v1, tmp_path / "t", "WordpieceTokenizeWithOffsets")
    result = check_servable(path)
    assert next(u for u in result.ops if u.op == "WordpieceTokenizeWithOffsets").category == "tf_text"


def test_classify_op_with_explicit_core_allowlist():
    assert classify_op("MatMul", core_ops={"MatMul"}) == "core"
    assert classify_op("MatMul", core_ops=set()) == "unknown"
    assert classify_op("CaseFoldUTF8", core_ops=set()) == "tf_text"
    assert classify_op("PyFunc", core_ops={"PyFunc"}) == "forbidden"  # forbidden beats core
    assert classify_op("MatMul") == "core"  # TensorFlow's registry


def test_table_lists_unservable_ops_first(tmp_path):
    path = _save_module(tmp_path / "py", lambda x: tf.py_function(lambda v: v, [x], tf.float32))
    lines = scan_saved_model(path).table().splitlines()
    assert lines[0].split() == ["op", "category", "nodes", "functions"]
    assert lines[1].split()[:3] == ["EagerPyFunc", "forbidden", "1"]


def test_missing_saved_model_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match=r"has no saved_model\.pb"):
        scan_saved_model(tmp_path)


def _saved_model_cli(*args):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([cli, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_saved_model_cli_show_lists_the_signature(retrieval_v1):
    out = _saved_model_cli("show", "--dir", retrieval_v1, "--all")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "signature_def['serving_default']" in out.stdout
    for alias in ("user_id", "recent_item_ids", "exclude_item_ids", "k", "item_ids", "scores"):
        assert f"['{alias}']" in out.stdout


def test_saved_model_cli_run_with_user_id_only(retrieval_v1, retrieval_fixture):
    out = _saved_model_cli(
        "run",
        "--dir",
        retrieval_v1,
        "--tag_set",
        "serve",
        "--signature_def",
        "serving_default",
        "--input_exprs",
        'user_id=["1","2"]',
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ids, _ = retrieval_fixture.reference_recommend(["1", "2"], version=1)
    assert "Result for output key item_ids:" in out.stdout
    # user 1's ranking by hand: 0.9 (10), 0.7 (50), 0.5 (30), 0.3 (40), 0.2 (60)
    assert list(ids[0]) == ["10", "50", "30", "40", "60"]
    assert "[[b'10' b'50' b'30' b'40' b'60']" in out.stdout
