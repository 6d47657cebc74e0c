"""Tests for tfrec_llm.tuning.directory: which search a folder holds, and the trial folders."""

import os

import pytest

from tfrec_llm.config import load_config, replace
from tfrec_llm.errors import ConfigError
from tfrec_llm.tuning.directory import check_search_directory, claim_model_dir, write_search_config


def test_restart_must_match_config_and_variant_except_max_trials(tiny_config, tmp_path):
    folder = str(tmp_path / "s")
    check_search_directory(folder, tiny_config, "id", overwrite=False, worker=False)  # nothing there yet
    write_search_config(folder, tiny_config, "id")
    assert (tmp_path / "s" / "search.yaml").read_text().startswith("# tfrec-llm tune: variant id\nname: ")
    check_search_directory(folder, tiny_config, "id", overwrite=False, worker=False)
    check_search_directory(
        folder, replace(tiny_config, tune__max_trials=9), "id", overwrite=False, worker=False
    )
    with pytest.raises(
        ConfigError,
        match=r"holds a search started with another config or variant \(see .*search.yaml\)",
    ):
        check_search_directory(
            folder,
            replace(tiny_config, model__temperature=0.5),
            "id",
            overwrite=False,
            worker=False,
        )
    with pytest.raises(ConfigError, match=r"another config or variant"):
        check_search_directory(folder, tiny_config, "bert", overwrite=False, worker=False)
    check_search_directory(
        folder, replace(tiny_config, model__temperature=0.5), "bert", overwrite=True, worker=False
    )


def test_overwrite_refuses_a_folder_that_is_not_a_search(tiny_config, tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match=r"is not empty and holds no search .* refusing to delete it"):
        check_search_directory(str(tmp_path), tiny_config, "id", overwrite=True, worker=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    check_search_directory(str(empty), tiny_config, "id", overwrite=True, worker=False)


def test_overwrite_on_a_worker_is_refused(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match=r"overwrite on a worker would delete the chief's search"):
        check_search_directory(str(tmp_path), tiny_config, "id", overwrite=True, worker=True)


def test_trial_folder_of_another_config_loses_its_training_state(tiny_config, tmp_path):
    folder = tmp_path / "trial_0"
    claim_model_dir(str(folder), tiny_config)
    for name in ("validation.json", "best.weights.h5", "trial.json"):
        (folder / name).write_text("x")
    (folder / "backup").mkdir()
    (folder / "execution_1").mkdir()
    claim_model_dir(str(folder), tiny_config)  # same config: a resume keeps everything
    assert sorted(os.listdir(folder)) == [
        "backup",
        "best.weights.h5",
        "config.yaml",
        "execution_1",
        "trial.json",
        "validation.json",
    ]
    other = replace(tiny_config, model__embedding_dim=16)
    claim_model_dir(str(folder), other)
    assert sorted(os.listdir(folder)) == ["config.yaml", "trial.json"]  # KerasTuner's file stays
    assert load_config(folder / "config.yaml") == other
