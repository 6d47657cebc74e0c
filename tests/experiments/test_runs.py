"""Tests for tfrec_llm.experiments.runs: a finished run is reused only with the same settings and
data; anything else is an error that keeps the folder, unless the caller asks to retrain."""

import dataclasses
import json
import os
import re
import shutil

import pytest
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig, load_config, replace
from tfrec_llm.experiments.prepare import prepare
from tfrec_llm.experiments.runs import (
    MissingRunError,
    StaleRunError,
    load_or_train,
    move_aside,
    require_trained,
    run_dir,
    run_status,
)

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
    with pytest.raises(StaleRunError, match=r"the input data changed.*--retrain"):
        load_or_train(cfg, prepare(cfg, "loo", with_text=False, dataset=edited), "id", verbose=0)


def test_retrain_and_if_stale_retrain_replace_the_run(trained, caplog):
    cfg, prepared, _, directory = trained
    shutil.rmtree(directory)  # if_stale=retrain (a caller's own folder) deletes; tested on a fresh one
    load_or_train(cfg, prepared, "id", verbose=0)
    changed = replace(cfg, model__embedding_dim=12)
    model, _ = load_or_train(changed, prepared, "id", if_stale="retrain", verbose=0)
    assert model.item_tower.embedding_dim == 12
    assert any("other settings or data" in r.getMessage() for r in caplog.records)
    model, _ = load_or_train(cfg, prepared, "id", retrain=True, verbose=0)
    assert model.item_tower.embedding_dim == 8
    with open(os.path.join(directory, "training_config.json")) as f:
        assert json.load(f)["model"]["embedding_dim"] == 8


def test_retrain_moves_the_old_run_aside_and_never_deletes_it(trained, caplog):
    cfg, prepared, _, directory = trained
    with open(os.path.join(directory, "model.weights.h5"), "rb") as f:
        old_weights = f.read()
    load_or_train(cfg, prepared, "id", retrain=True, verbose=0)
    load_or_train(cfg, prepared, "id", retrain=True, verbose=0)  # twice in one second: no clash
    parent, name = os.path.split(directory)
    backups = sorted(d for d in os.listdir(parent) if d.startswith(name + ".bak-"))
    assert len(backups) == 2
    assert re.fullmatch(r"id\.bak-\d{8}-\d{6}(-2)?", backups[0]), backups
    with open(os.path.join(parent, backups[0], "model.weights.h5"), "rb") as f:
        assert f.read() == old_weights  # the first model, untouched
    assert os.path.exists(os.path.join(parent, backups[0], "result.json"))
    assert any("moved the old run" in r.getMessage() for r in caplog.records)


def test_move_aside_of_a_missing_or_empty_folder_does_nothing(tmp_path):
    assert move_aside(str(tmp_path / "nothing")) is None
    (tmp_path / "empty").mkdir()
    assert move_aside(str(tmp_path / "empty")) is None
    assert os.listdir(tmp_path) == ["empty"]


def _csv_run(tiny_csv_config):
    config, tmp = tiny_csv_config
    cfg = load_config(config, ["train.epochs=1", "model.embedding_dim=8"])
    _, info = load_or_train(cfg, prepare(cfg, "loo", with_text=False), "id", verbose=0)
    return cfg, tmp


def test_an_in_place_edit_of_the_csv_is_a_stale_run_naming_the_file(tiny_csv_config):
    cfg, tmp = _csv_run(tiny_csv_config)
    path = tmp / "interactions.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the last interaction removed, in place
    with pytest.raises(StaleRunError) as err:
        load_or_train(cfg, prepare(cfg, "loo", with_text=False), "id", verbose=0)
    message = str(err.value)
    size = path.stat().st_size
    assert (
        f"the input data changed: interactions file {path} ({size + len(lines[-1])} -> {size} bytes"
        in message
    )
    assert "--retrain" in message and "data_sha256" not in message


def test_a_changed_vocabulary_is_a_stale_run_not_a_shape_traceback(tiny_csv_config):
    cfg, tmp = _csv_run(tiny_csv_config)
    path = tmp / "interactions.csv"
    with open(path, "a") as f:  # a new item (the item file lists it) and a new user
        f.write("999,1,2000000\n999,2,2000001\n999,3,2000002\n")
    with pytest.raises(StaleRunError, match=r"the input data changed: interactions file"):
        load_or_train(cfg, prepare(cfg, "loo", with_text=False), "id", verbose=0)


def test_weights_that_do_not_fit_are_a_stale_run(trained, tmp_path):
    cfg, prepared, _, directory = trained
    other = replace(cfg, model__embedding_dim=12, train__model_dir=str(tmp_path / "other"))
    load_or_train(other, prepared, "id", verbose=0)
    shutil.copy(os.path.join(run_dir(other, "loo", "id"), "model.weights.h5"), directory)
    with pytest.raises(StaleRunError, match=r"model\.weights\.h5 does not fit the model .*--retrain"):
        load_or_train(cfg, prepared, "id", verbose=0)


def test_a_setting_added_after_a_run_was_trained_keeps_it_fresh_at_its_default(trained):
    """A run recorded before ``model.gbce_*`` existed (`with_new_fields`) is reused while they
    are at their defaults, which keep the former behaviour, and is stale when one is not."""
    cfg, prepared, _, directory = trained
    record = os.path.join(directory, "training_config.json")
    with open(record) as handle:
        fingerprint = json.load(handle)
    del fingerprint["model"]["gbce_negatives"], fingerprint["model"]["gbce_t"]
    with open(record, "w") as handle:
        json.dump(fingerprint, handle)
    before = _mtime(directory)
    load_or_train(cfg, prepared, "id", verbose=0)
    assert _mtime(directory) == before  # reused, not trained again
    changed = replace(cfg, model__gbce_negatives=64)
    with pytest.raises(StaleRunError, match=r"model\.gbce_negatives: 256 -> 64"):
        load_or_train(changed, prepared, "id", verbose=0)


def test_a_model_without_its_fingerprint_is_not_reused(trained):
    cfg, prepared, _, directory = trained
    os.remove(os.path.join(directory, "training_config.json"))
    with pytest.raises(StaleRunError, match="cannot be checked"):
        load_or_train(cfg, prepared, "id", verbose=0)


def test_if_stale_must_be_known(trained):
    cfg, prepared, _, _ = trained
    with pytest.raises(ValueError, match=r"if_stale='ignore'; expected one of \('error', 'retrain'\)"):
        load_or_train(cfg, prepared, "id", if_stale="ignore")


def test_if_missing_error_creates_nothing_and_names_the_command(tiny_dataset, tmp_path):
    cfg = replace(ExperimentConfig(), train__model_dir=str(tmp_path / "runs"), **_TINY)
    prepared = prepare(cfg, "loo", with_text=False, dataset=tiny_dataset)
    with pytest.raises(MissingRunError) as err:
        load_or_train(cfg, prepared, "id", if_missing="error", verbose=0)
    assert str(err.value) == (
        f"no trained model in {run_dir(cfg, 'loo', 'id')}: this command does not train, so train it "
        "first with 'tfrec-llm train --variant id --protocol loo' (same --config, --set and --model-dir)."
    )
    assert os.listdir(tmp_path) == []  # no run folder, nothing trained
    with pytest.raises(ValueError, match=r"if_missing='ignore'; expected one of \('train', 'error'\)"):
        load_or_train(cfg, prepared, "id", if_missing="ignore")


def test_if_missing_error_reads_a_finished_run_and_require_trained_names_the_others(trained):
    cfg, prepared, first, directory = trained
    stamp, files = _mtime(directory), sorted(os.listdir(directory))
    _, again = load_or_train(cfg, prepared, "id", if_missing="error", verbose=0)
    assert again == first and _mtime(directory) == stamp and sorted(os.listdir(directory)) == files
    require_trained(cfg, [("loo", "id")], "evaluate")  # finished: nothing to say
    with pytest.raises(MissingRunError) as err:
        require_trained(cfg, [("loo", "id"), ("loo", "mean"), ("cold-users", "id")], "evaluate")
    message = str(err.value)
    mean, cold = run_dir(cfg, "loo", "mean"), run_dir(cfg, "cold-users", "id")
    assert message.startswith(f"no trained model in {mean}, {cold}: evaluate does not train, so train them")
    assert f"{directory}," not in message and f"{directory}:" not in message
    assert "tfrec-llm run" not in message  # `run` does not train id
    with pytest.raises(MissingRunError) as err:
        require_trained(cfg, [("loo", "id"), ("loo", "bert"), ("cold-users", "bert")], "evaluate")
    assert str(err.value).endswith(  # `run` trains the REPORT_VARIANTS: bert
        "or use 'tfrec-llm run --protocol loo,cold-users', which trains, evaluates and exports."
    )


def test_a_killed_run_is_unfinished_until_it_is_resumed(tiny_dataset, tmp_path, monkeypatch):
    cfg = replace(ExperimentConfig(), train__model_dir=str(tmp_path), **{**_TINY, "train__epochs": 2})
    prepared = prepare(cfg, "loo", with_text=False, dataset=tiny_dataset)
    directory = run_dir(cfg, "loo", "id")

    def killed(self, epoch, logs=None):  # after the epoch's checkpoint (BackupAndRestore runs first)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", killed)
        with pytest.raises(KeyboardInterrupt):
            load_or_train(cfg, prepared, "id", verbose=0)
    assert run_status(directory) == "unfinished"
    with pytest.raises(MissingRunError) as err:
        load_or_train(cfg, prepared, "id", if_missing="error", verbose=0)
    assert str(err.value).startswith(
        f"an unfinished run (killed during training: backup/ but no model) in {directory}: this command "
        "does not train, so resume it first with 'tfrec-llm train --variant id --protocol loo'"
    )
    assert not os.path.exists(os.path.join(directory, "model.weights.h5"))
    _, info = load_or_train(cfg, prepared, "id", verbose=0)  # `train` finishes it from backup/
    assert run_status(directory) == "finished" and info["epochs_run"] == 2


def test_a_field_added_to_the_config_after_the_run_takes_its_default(trained):
    cfg, prepared, first, directory = trained
    path = os.path.join(directory, "training_config.json")
    with open(path) as f:
        recorded = json.load(f)
    del recorded["model"]["user_dropout"]  # as if recorded before the field existed
    assert "strategy" not in recorded["train"]  # one device or many: the same model
    recorded["train"]["strategy"] = "mirrored"  # as recorded by runs made while it was in
    with open(path, "w") as f:
        json.dump(recorded, f)
    _, again = load_or_train(cfg, prepared, "id", verbose=0)
    assert again == first
    with pytest.raises(StaleRunError, match=r"model\.user_dropout: 0\.0 -> 0\.5"):
        load_or_train(replace(cfg, model__user_dropout=0.5), prepared, "id", verbose=0)
