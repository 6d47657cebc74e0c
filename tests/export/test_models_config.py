"""Tests of tfrec_llm.export.models_config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tfrec_llm  # noqa: F401
from tfrec_llm.errors import ConfigError
from tfrec_llm.export.models_config import (
    ModelEntry,
    read_models_config,
    resolve_base_path,
    write_models_config,
)


def test_written_config_uses_container_paths_and_reads_back(tmp_path):
    path = write_models_config(tmp_path, ["retrieval", "item_encoder"])
    assert path == os.path.join(str(tmp_path), "models.config")
    text = Path(path).read_text(encoding="utf-8")
    assert 'base_path: "/models/retrieval"' in text
    assert "INSIDE the tensorflow/serving container" in text
    assert "latest { num_versions: 1 }" in text
    entries = read_models_config(path)
    assert entries == (
        ModelEntry("retrieval", "/models/retrieval", str(tmp_path / "retrieval"), "latest", (), 1),
        ModelEntry("item_encoder", "/models/item_encoder", str(tmp_path / "item_encoder"), "latest", (), 1),
    )


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("all", ("all", ())), ([3, 1], ("specific", (3, 1)))],
)
def test_all_and_specific_policies(tmp_path, policy, expected):
    entry = read_models_config(write_models_config(tmp_path, ["retrieval"], policy))[0]
    assert (entry.policy, entry.versions) == expected


def test_relative_and_existing_absolute_base_paths(tmp_path):
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "models.config"
    path.write_text(
        "model_config_list {\n"
        '  config { name: "a" base_path: "models/a" model_platform: "tensorflow" }\n'
        f'  config {{ name: "b" base_path: "{tmp_path}" model_platform: "tensorflow"\n'
        "           model_version_policy { latest { num_versions: 2 } } }\n"
        "}\n"
    )
    a, b = read_models_config(path)
    assert a.local_path == str(tmp_path / "conf" / "models" / "a") and a.policy == "latest"
    assert b.local_path == str(tmp_path) and b.num_versions == 2


def test_resolve_base_path_maps_only_missing_container_paths(tmp_path):
    assert resolve_base_path("/models/retrieval", str(tmp_path)) == str(tmp_path / "retrieval")
    assert resolve_base_path(str(tmp_path), "/elsewhere") == str(tmp_path)
    assert resolve_base_path("/srv/x", str(tmp_path)) == "/srv/x"


@pytest.mark.parametrize(
    ("names", "policy", "match"),
    [
        ([], "latest", "one or more distinct model names"),
        (["a", "a"], "latest", "one or more distinct model names"),
        (["a/b"], "latest", "plain folder name"),
        (["a"], "newest", "version_policy='newest' is not supported"),
        (["a"], [], "a specific policy needs one or more"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path, names, policy, match):
    with pytest.raises(ConfigError, match=match):
        write_models_config(tmp_path, names, policy)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("model_config_list { config { name: ", "not a ModelServerConfig text proto"),
        ("custom_model_config {}", "expected a model_config_list"),
        ('model_config_list { config { name: "a" } config { name: "a" } }', "empty or repeated"),
        ('model_config_list { config { name: "a" model_platform: "onnx" } }', "only 'tensorflow'"),
    ],
)
def test_read_rejects_bad_files(tmp_path, text, match):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_models_config(path)


def test_read_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_models_config(tmp_path / "nope.config")
