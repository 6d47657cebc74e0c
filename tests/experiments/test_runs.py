"""Tests for tfrec_llm.experiments.runs: a finished run is reused only with the same settings and
data; anything else is an error that keeps the folder, unless the caller asks to retrain."""

import dataclasses
import json
import os

import pytest

from tfrec_llm.config import ExperimentConfig, replace
from tfrec_llm.experiments.prepare import prepare
from tfrec_llm.experiments.runs import StaleRunError, load_or_train, run_dir

_TINY = dict(
    model__embedding_dim=8, model__history_length=4, train__batch_size=32, train__epochs=1, train__patience=1
)


@pytest.fixture()
def trained(tiny_dataset, tmp_path):
    cfg = replace(ExperimentConfig(), train__model_dir=str(tmp_path), **_TINY)
    prepared = prepare(cfg, "loo", with_text=False, dataset=tiny_dataset)
    _, info = load_or_train(cfg, prepared, "id", verbose=0)
    return cfg, prepared, info, run_dir(cfg, "loo", "id")


def _mtime(directory):
    return os.path.getmtime(os.path.join(directory, "model.weights.h5"))


def test_run_folder_is_protocol_then_variant_and_holds_the_config(trained, tmp_path):
    cfg, _, info, directory = trained
    assert directory == os.path.join(str(tmp_path), "loo", "id")
    assert set(os.listdir(directory)) >= {
        "model.weights.h5",
        "result.json",
        "config.yaml",
        "training_config.json",
    }
    assert info["variant"] == "id" and info["epochs_run"] == 1


def test_finished_model_is_reused(trained):
    cfg, prepared, first, directory = trained
    stamp = _mtime(directory)
    _, again = load_or_train(cfg, prepared, "id", verbose=0)
    assert again == first  # read back from result.json, not retrained
    assert _mtime(directory) == stamp


def test_changed_config_is_an_error_that_keeps_the_model(trained):
    cfg, prepared, _, directory = trained
    stamp = _mtime(directory)
    changed = replace(cfg, model__embedding_dim=12)
    with pytest.raises(
        StaleRunError, match=r"other settings or data \(model\.embedding_dim: 8 -> 12\).*--retrain"
    ):
        load_or_train(changed, prepared, "id", verbose=0)
    assert _mtime(directory) == stamp
    with open(os.path.join(directory, "training_config.json")) as f:
        assert json.load(f)["model"]["embedding_dim"] == 8


def test_changed_data_is_an_error(trained, tiny_dataset):
    cfg, _, _, _ = trained
    interactions = tiny_dataset.interactions.copy()
    interactions.loc[0, "timestamp"] += 1  # one edited row of the log
    edited = dataclasses.replace(tiny_dataset, interactions=interactions)
    with pytest.raises(StaleRunError, match=r"data_sha256"):
        load_or_train(cfg, prepare(cfg, "loo", with_text=False, dataset=edited), "id", verbose=0)


def test_retrain_and_if_stale_retrain_replace_the_run(trained, caplog):
    cfg, prepared, _, directory = trained
    changed = replace(cfg, model__embedding_dim=12)
    model, _ = load_or_train(changed, prepared, "id", if_stale="retrain", verbose=0)
    assert model.item_tower.embedding_dim == 12
    assert any("other settings or data" in r.getMessage() for r in caplog.records)
    model, _ = load_or_train(cfg, prepared, "id", retrain=True, verbose=0)
    assert model.item_tower.embedding_dim == 8
    with open(os.path.join(directory, "training_config.json")) as f:
        assert json.load(f)["model"]["embedding_dim"] == 8


def test_a_model_without_its_fingerprint_is_not_reused(trained):
    cfg, prepared, _, directory = trained
    os.remove(os.path.join(directory, "training_config.json"))
    with pytest.raises(StaleRunError, match="cannot be checked"):
        load_or_train(cfg, prepared, "id", verbose=0)


def test_if_stale_must_be_known(trained):
    cfg, prepared, _, _ = trained
    with pytest.raises(ValueError, match=r"if_stale='ignore'; expected one of \('error', 'retrain'\)"):
        load_or_train(cfg, prepared, "id", if_stale="ignore")
