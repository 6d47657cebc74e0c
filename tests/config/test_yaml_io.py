"""Tests for tfrec_llm.config: YAML round trip, unknown keys, overrides, validation."""

import dataclasses

import pytest

from tfrec_llm.config import ExperimentConfig, config_from_dict, dump_config, load_config, replace
from tfrec_llm.errors import ConfigError


def test_dump_load_round_trip_is_identity(tmp_path):
    cfg = replace(
        ExperimentConfig(),
        train__epochs=7,
        model__use_text=False,
        data__columns=(("user_id", "uid"), ("item_id", "iid")),
        eval__ks=(5, 20),
    )
    path = tmp_path / "c.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg


def test_pipeline_default_config_equals_builtin_defaults():
    assert load_config("pipelines/movielens_100k.yaml") == ExperimentConfig()


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['train.epoch'\].*'epochs'"):
        config_from_dict({"train": {"epoch": 3}})


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['trian'\]"):
        config_from_dict({"trian": {}})


def test_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(None, ["train.epochs=3", "model.use_text=false", "model.temperature=0.5", "eval.ks=[1,2]"])
    assert (cfg.train.epochs, cfg.model.use_text, cfg.model.temperature, cfg.eval.ks) == (3, False, 0.5, (1, 2))


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="not of the form section.field=value"):
        load_config(None, ["train.epochs"])


@pytest.mark.parametrize(
    "values, message",
    [
        ({"train": {"epochs": "many"}}, r"train.epochs: expected int, got 'many'"),
        ({"train": {"epochs": 2.5}}, r"train.epochs: expected an integer"),
        ({"model": {"use_ids": "yes"}}, r"model.use_ids: expected true/false"),
        ({"eval": {"protocol": "random"}}, r"eval.protocol='random'"),
        ({"model": {"use_ids": False, "use_text": False, "use_categories": False}}, "candidate tower has no input"),
        ({"data": {"source": "csv"}}, "data.path is empty"),
        ({"export": {"default_k": 500}}, "default_k=500"),
    ],
)
def test_invalid_values_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExperimentConfig().train.epochs = 3  # type: ignore[misc]
