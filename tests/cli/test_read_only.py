"""``evaluate``, ``export`` and ``recommend`` only read trained models (issue 13): a model that
is not trained, or whose training was killed, stops them before any data is read, with one
sentence naming the run folder and the ``tfrec-llm train`` command that makes it. Nothing is
created, trained or deleted; a finished run is read as it is."""

import os

import pytest
import tf_keras as keras

from tfrec_llm.cli.main import main
from tfrec_llm.experiments import Experiment, reports


def _tree(root):
    """Every file and folder under ``root`` with its size and mtime: any change shows."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            stat = os.stat(path)
            out[os.path.relpath(path, root)] = (stat.st_size if name in files else -1, stat.st_mtime_ns)
    return out


def _fails(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("tfrec-llm ")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture()
def no_data_read(monkeypatch):
    """Reading the data (the first work a command does) fails the test."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(Experiment, "prepare", forbidden)
    monkeypatch.setattr(reports, "load_dataset", forbidden)


def _read_only(command, config):
    return {
        "evaluate": ["evaluate", "--config", config, "--variants", "id", "--quiet"],
        "export": ["export", "--config", config, "--variant", "id", "--quiet"],
        "recommend": ["recommend", "--config", config, "--variant", "id", "--user", "1", "--quiet"],
        "explain": ["recommend", "--config", config, "--variant", "id", "--user", "1", "--explain"],
    }[command]


@pytest.mark.parametrize("command", ["evaluate", "export", "recommend", "explain"])
def test_a_read_only_command_without_a_trained_model_stops_before_any_work(
    tiny_csv_config, capsys, no_data_read, command
):
    config, tmp = tiny_csv_config
    before = _tree(tmp)
    line = _fails(_read_only(command, config), capsys)
    name = "recommend" if command == "explain" else command
    assert line == (
        f"tfrec-llm {name}: error: no trained model in {tmp / 'runs' / 'loo' / 'id'}: {name} does not "
        "train, so train it first with 'tfrec-llm train --variant id --protocol loo' "
        "(same --config, --set and --model-dir)."
    )
    assert _tree(tmp) == before  # no run folder, no weights, no text cache, no export
    assert not os.path.exists(tmp / "runs")


def test_evaluate_with_the_default_variants_names_each_missing_run(tiny_csv_config, capsys, no_data_read):
    config, tmp = tiny_csv_config
    before = _tree(tmp)
    line = _fails(["evaluate", "--config", config], capsys)  # REPORT_VARIANTS: bert
    runs = tmp / "runs"
    assert line == (
        f"tfrec-llm evaluate: error: no trained model in {runs / 'loo' / 'bert'}: evaluate does not "
        "train, so train it first with 'tfrec-llm train --variant bert --protocol loo' (same --config, "
        "--set and --model-dir), or use 'tfrec-llm run', which trains, evaluates and exports."
    )
    line = _fails(
        ["evaluate", "--config", config, "--protocol", "loo,cold-users", "--variants", "mean,bert"], capsys
    )
    assert line.startswith(f"tfrec-llm evaluate: error: no trained model in {runs / 'loo' / 'mean'}, ")
    assert (
        "'tfrec-llm train --variant mean --protocol loo', 'tfrec-llm train --variant bert --protocol loo'"
    ) in line
    assert "tfrec-llm run" not in line  # `run` trains the REPORT_VARIANTS only
    assert line.count("'tfrec-llm train --variant") == 4
    assert _tree(tmp) == before


def test_a_finished_run_is_read_without_training_and_others_are_named(tiny_csv_config, capsys):
    config, tmp = tiny_csv_config
    assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 0
    run = tmp / "runs" / "loo" / "id"
    trained = _tree(run)
    assert "model.weights.h5" in trained

    assert main(_read_only("evaluate", config)) == 0
    assert "TwoTower-ID" in capsys.readouterr().out
    assert main([*_read_only("export", config), "--version", "2"]) == 0
    assert os.path.exists(tmp / "exports" / "retrieval" / "2" / "saved_model.pb")
    assert main([*_read_only("recommend", config), "--k", "3"]) == 0
    assert "user 1:" in capsys.readouterr().out
    assert _tree(run) == trained  # nothing written to the run: no training, same weights
    assert sorted(os.listdir(tmp / "runs" / "loo")) == ["id"]

    # Other variants or protocols: each missing one is named, the trained one is not.
    before = _tree(tmp)
    line = _fails(
        ["evaluate", "--config", config, "--variants", "id,sasrec", "--protocol", "loo,cold-items"], capsys
    )
    runs = tmp / "runs"
    missing = [runs / "loo" / "sasrec", runs / "cold-items" / "id", runs / "cold-items" / "sasrec"]
    assert line.startswith(f"tfrec-llm evaluate: error: no trained model in {', '.join(map(str, missing))}: ")
    assert f"{run}," not in line and f"{run}:" not in line
    assert "'tfrec-llm train --variant sasrec --protocol cold-items'" in line
    assert "tfrec-llm run" not in line  # `run` trains mean and bert only, not sasrec
    assert _tree(tmp) == before


def test_a_killed_run_is_named_unfinished_and_train_resumes_it(tiny_csv_config, capsys, monkeypatch):
    config, tmp = tiny_csv_config

    def killed(self, epoch, logs=None):  # after epoch 0's checkpoint is saved (BackupAndRestore)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.TensorBoard, "on_epoch_end", killed)
        assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 130
    run = tmp / "runs" / "loo" / "id"
    assert os.listdir(run / "backup") and not os.path.exists(run / "model.weights.h5")
    capsys.readouterr()

    before = _tree(tmp)
    for command in ("evaluate", "export", "recommend"):
        line = _fails(_read_only(command, config), capsys)
        assert line == (
            f"tfrec-llm {command}: error: an unfinished run (killed during training: backup/ but no "
            f"model) in {run}: {command} does not train, so resume it first with "
            f"'tfrec-llm train --variant id --protocol loo' (same --config, --set and --model-dir)."
        )
    assert _tree(tmp) == before  # the checkpoint is kept as it is

    assert main(["train", "--config", config, "--variant", "id", "--quiet"]) == 0
    assert "model.weights.h5" in os.listdir(run)
    assert main(_read_only("recommend", config)) == 0
