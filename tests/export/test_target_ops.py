"""The op scan against the target server release (``export.tf_serving_version``).

The op lists in ``tfrec_llm/export/ops/`` are those of TensorFlow 2.20.0 and 2.21.0 (written by
``pipelines/tools/list_ops.py``); 2.21 registers one op more, ``DecodeJxl``, which makes a real
"newer than the target" case. Crafted lists check the failure message and the fallbacks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import tfrec_llm  # noqa: F401  (Keras 2 before TensorFlow)
from tfrec_llm.config import ExportConfig
from tfrec_llm.errors import ConfigError, ExportError
from tfrec_llm.export import op_scan
from tfrec_llm.export.op_scan import check_servable, classify_op, scan_saved_model, server_ops

REPO = Path(__file__).resolve().parents[2]


def _save(path: Path, body) -> str:
    import tensorflow as tf

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, x):
            return {"y": body(x)}

    module = M()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return str(path)


@pytest.fixture(scope="module")
def jxl_model(tmp_path_factory):
    """A SavedModel with a ``DecodeJxl`` node (registered since TensorFlow 2.21, not in 2.20)."""
    import tensorflow as tf

    return _save(
        tmp_path_factory.mktemp("jxl") / "1", lambda x: tf.shape(tf.raw_ops.DecodeJxl(contents=x[0]))
    )


@pytest.fixture(scope="module")
def topk_model(tmp_path_factory):
    import tensorflow as tf

    return _save(
        tmp_path_factory.mktemp("topk") / "1",
        lambda x: tf.math.top_k(tf.cast(tf.strings.length(x), tf.float32), k=1).values,
    )


def test_stored_lists_match_the_tensorflow_releases():
    old, new = server_ops("2.20.0"), server_ops("2.21.0")
    assert new.core - old.core == {"DecodeJxl"} and old.core <= new.core
    assert {"MatMul", "TopKV2", "HashTableV2", "StatefulPartitionedCall"} <= old.core
    assert {"CaseFoldUTF8", "WordpieceTokenizeWithOffsets", "NormalizeUTF8"} <= old.tf_text
    assert old.tf_text == new.tf_text and old.tf_text <= op_scan.TF_TEXT_CLASSIC_OPS
    for path in (old.path, new.path):
        head = Path(path).read_text(encoding="utf-8").splitlines()[:5]
        assert any("pipelines/tools/list_ops.py" in line for line in head)


def test_installed_tensorflow_registers_what_its_list_says():
    import tensorflow as tf

    listed = server_ops(f"{tf.__version__.rsplit('.', 1)[0]}.0").core
    from tensorflow.python.framework import op_def_registry

    assert all(op_def_registry.get(op) is not None for op in sorted(listed)[::50])
    assert op_def_registry.get("DecodeJxl") is not None


def test_an_op_newer_than_the_target_fails_the_scan_and_is_named(jxl_model):
    assert scan_saved_model(jxl_model).ok  # fine for the TensorFlow installed here
    assert check_servable(jxl_model, tf_serving_version="2.21.0").ok
    result = scan_saved_model(jxl_model, tf_serving_version="2.20.0")
    assert not result.ok and list(result.unsupported) == ["DecodeJxl"]
    with pytest.raises(ExportError) as info:
        check_servable(jxl_model, tf_serving_version="2.20.0")
    message = str(info.value)
    assert "tensorflow/serving:2.20.0" in message and "DecodeJxl [newer_than_target" in message
    assert "export.tf_serving_version" in message


def test_a_crafted_list_without_an_op_fails_naming_it(topk_model, tmp_path, monkeypatch):
    full = server_ops("2.20.0")
    assert check_servable(topk_model, tf_serving_version="2.20.0").ok
    lines = ["# crafted: 2.20 without TopKV2", "[core]", *sorted(full.core - {"TopKV2"}), "[tf_text]"]
    (tmp_path / "tf-9.9.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(op_scan, "OPS_DIR", str(tmp_path))
    with pytest.raises(ExportError, match=r"1 unsupported op\(s\): TopKV2\."):
        check_servable(topk_model, tf_serving_version="9.9.1")


def test_classification_with_a_target():
    target = op_scan.ServerOps("1.0.0", "crafted", frozenset({"MatMul"}), frozenset({"CaseFoldUTF8"}))
    assert classify_op("MatMul", target=target) == "core"
    assert classify_op("CaseFoldUTF8", target=target) == "tf_text"
    assert classify_op("AddV2", target=target) == "newer_than_target"  # registered here, not there
    assert classify_op("WordpieceTokenizeWithOffsets", target=target) == "newer_than_target"
    assert classify_op("PyFunc", target=target) == "forbidden"
    assert classify_op("NoSuchOpAnywhere", target=target) == "unknown"
    assert classify_op("TFText>Utf8Binarize", target=target) == "tf_text_unverified"


@pytest.mark.parametrize("version", ["2.19.0", "latest", "2.20"])
def test_unknown_or_malformed_versions_are_config_errors(version):
    with pytest.raises(ConfigError, match=r"stored: 2\.20, 2\.21"):
        server_ops(version)


def test_config_default_is_the_compose_tag_and_has_a_list():
    default = ExportConfig().tf_serving_version
    assert default == "2.20.0"
    compose = yaml.safe_load((REPO / "serving" / "docker-compose.yml").read_text(encoding="utf-8"))
    image = compose["services"]["tfserving"]["image"]
    assert image == f"tensorflow/serving:${{TF_SERVING_TAG:-{default}}}"
    assert server_ops(default).tf_serving_version == default
    assert re.search(
        rf"tensorflow/serving:{re.escape(default)} \\", (REPO / "serving" / "README.md").read_text()
    )


def test_config_check_rejects_a_non_tag():
    from tfrec_llm.config import ExperimentConfig, replace
    from tfrec_llm.config.checks import validate

    validate(ExperimentConfig())
    with pytest.raises(ConfigError, match="export.tf_serving_version"):
        validate(replace(ExperimentConfig(), export__tf_serving_version="latest"))


def test_check_servable_command_uses_the_target_release(jxl_model, capsys):
    from tfrec_llm.cli.main import build_parser
    from tfrec_llm.cli.serving_commands import check_servable_command

    parser = build_parser()
    assert check_servable_command(parser.parse_args(["check-servable", jxl_model])) == 1  # default 2.20.0
    assert "DecodeJxl" in capsys.readouterr().err
    for version in ("2.21.0", "installed"):
        args = parser.parse_args(["check-servable", jxl_model, "--tf-serving-version", version])
        assert check_servable_command(args) == 0
    assert "(the TensorFlow installed here)" in capsys.readouterr().out
