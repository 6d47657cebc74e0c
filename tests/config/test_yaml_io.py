"""Tests for tfrec_llm.config.yaml_io: YAML round trips, unknown keys, overrides, file errors."""

import dataclasses
import os

import pytest

from tfrec_llm.config import (
    ExperimentConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_config,
    load_config,
    replace,
)
from tfrec_llm.errors import ConfigError


def _custom_config() -> ExperimentConfig:
    """A config differing from the defaults in every kind of field (int, bool, pairs, tuples)."""
    return replace(
        ExperimentConfig(),
        name="custom",
        data__source="csv",
        data__path="ratings.csv",
        data__columns=(("user_id", "uid"), ("item_id", "iid")),
        data__item_text_fields=("title",),
        train__epochs=7,
        train__monitor="hr@20",
        model__use_text=False,
        model__temperature=0.25,
        eval__ks=(5, 20),
    )


def test_load_of_dump_is_identity(tmp_path):
    cfg = _custom_config()
    path = tmp_path / "c.yaml"
    dump_config(cfg, path)
    assert load_config(path) == cfg


def test_dump_of_load_reproduces_the_file_text(tmp_path):
    path = tmp_path / "c.yaml"
    text = dump_config(_custom_config(), path)
    assert path.read_text(encoding="utf-8") == text
    assert dump_config(load_config(path)) == text


def test_dump_writes_atomically_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("old")
    dump_config(ExperimentConfig(), path)
    assert os.listdir(tmp_path) == ["c.yaml"]
    assert load_config(path) == ExperimentConfig()


def test_config_to_dict_gives_plain_lists():
    values = config_to_dict(_custom_config())
    assert values["data"]["columns"] == [["user_id", "uid"], ["item_id", "iid"]]
    assert values["eval"]["ks"] == [5, 20]
    assert values["tune"]["space"][0] == {
        "name": "model.embedding_dim",
        "type": "choice",
        "min": 0.0,
        "max": 0.0,
        "step": 0.0,
        "sampling": "linear",
        "values": ["32", "64", "128"],
    }
    assert config_from_dict(values) == _custom_config()


def test_columns_may_be_written_as_a_mapping():
    cfg = config_from_dict(
        {"data": {"source": "csv", "path": "r.csv", "columns": {"user_id": "uid", "item_id": "iid"}}}
    )
    assert cfg.data.columns == (("user_id", "uid"), ("item_id", "iid"))


def test_pipeline_default_config_equals_builtin_defaults_but_the_marked_fields():
    two_stage = {
        "model": {"user_text": True, "future_window": 100, "future_context": 10},
        "eval": {"two_stage": True},
        "ranking": {
            "objective": "listwise",
            "examples": "valid_lists",
            "residual": True,
            "item_item_l2": 100.0,
            "cold_item_neighbours": 100,
        },
    }
    assert load_config("pipelines/movielens_100k.yaml") == config_from_dict(two_stage)
    assert ExperimentConfig().ranking.cold_item_neighbours == 0
    assert ExperimentConfig().eval.two_stage is False
    assert ExperimentConfig().model.user_text is False
    assert (ExperimentConfig().model.future_window, ExperimentConfig().model.future_context) == (1, 0)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['train.epoch'\].*'epochs'"):
        config_from_dict({"train": {"epoch": 3}})


def test_unknown_key_message_lists_every_field_of_the_section():
    names = [f.name for f in dataclasses.fields(ExperimentConfig().export)]
    with pytest.raises(ConfigError) as info:
        config_from_dict({"export": {"k": 3}})
    assert str(info.value) == (f"unknown config key(s) ['export.k']; valid keys in export: {names}")


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['trian'\]"):
        config_from_dict({"trian": {}})


def test_non_string_keys_are_reported_not_crashed_on():
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) \['1', 'x'\]"):
        config_from_dict({1: "a", "x": "b"})


def test_overrides_parse_yaml_values():
    cfg = load_config(
        None,
        [
            "train.epochs=3",
            "model.use_text=false",
            "model.temperature=0.5",
            "eval.ks=[1,2]",
            "train.monitor=ndcg@2",
        ],
    )
    assert (cfg.train.epochs, cfg.model.use_text, cfg.model.temperature, cfg.eval.ks) == (
        3,
        False,
        0.5,
        (1, 2),
    )


def test_overrides_copy_and_do_not_touch_the_input():
    values = {"train": {"epochs": 3}}
    assert apply_overrides(values, ["train.epochs=4", "name=x"]) == {
        "train": {"epochs": 4},
        "name": "x",
    }
    assert values == {"train": {"epochs": 3}}


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="not of the form section.field=value"):
        load_config(None, ["train.epochs"])


def test_override_below_a_value_is_an_error():
    with pytest.raises(ConfigError, match=r"override 'train.epochs.x=1': 'epochs' is not a section"):
        load_config(None, ["train.epochs=3", "train.epochs.x=1"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_directory_instead_of_a_file_says_so(tmp_path):
    with pytest.raises(
        ConfigError, match=r"config file '.*' is a directory; expected a YAML file, e.g. pipelines/"
    ):
        load_config(tmp_path)


def test_top_level_list_is_rejected(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level"):
        load_config(path)


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml' is not UTF-8 text .*save it as UTF-8"):
        load_config(path)


def test_replace_sets_nested_fields_and_validates_them_together():
    cfg = replace(ExperimentConfig(), train__monitor="recall@5", eval__ks=(5,))
    assert (cfg.train.monitor, cfg.eval.ks, cfg.train.epochs) == ("recall@5", (5,), 200)  # default epochs
    with pytest.raises(ConfigError, match=r"train.monitor='ndcg@10'"):
        replace(ExperimentConfig(), eval__ks=(5,))


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExperimentConfig().train.epochs = 3  # type: ignore[misc]
