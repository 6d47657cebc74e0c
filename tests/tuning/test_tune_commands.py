"""Tests for tfrec_llm.cli.tune_commands: ``tfrec-llm tune`` with each algorithm, best.yaml through
``tfrec-llm train``, a killed search resumed, and a chief with two workers on loopback.

(Placed in tests/tuning/ with the rest of the tuning suite.)
"""

import csv
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tfrec_llm.cli.main import main
from tfrec_llm.config import load_config

OBJ = "valid/ndcg@10"
TRIALS = {"random": 2, "hyperband": 5, "bayesian": 3}  # hyperband: train.epochs=2, factor 2


def _rows(directory):
    with open(os.path.join(directory, "results.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _best_trial_id(directory):
    with open(os.path.join(directory, "best.yaml"), encoding="utf-8") as f:
        return re.match(r"# best trial (\S+) of the search", f.readline()).group(1)


def _tune_args(config_file, directory, *extra):
    return [
        "tune",
        "--config",
        config_file,
        "--directory",
        str(directory),
        "--variant",
        "id",
        *extra,
    ]


@pytest.mark.parametrize("algorithm", ["random", "hyperband", "bayesian"])
def test_each_algorithm_runs_trials_and_best_yaml_trains(algorithm, tiny_config_file, tmp_path, capsys):
    directory = tmp_path / algorithm
    extra = ["--algorithm", algorithm]
    if algorithm == "bayesian":
        extra += [
            "--max-trials",
            "3",
            "--set",
            "tune.bayesian_initial_points=2",
        ]  # the 3rd trial uses the GP
    if algorithm != "random":
        extra.append("--quiet")
    assert main(_tune_args(tiny_config_file, directory, *extra)) == 0
    out = capsys.readouterr().out

    rows = _rows(directory)
    assert len(rows) == TRIALS[algorithm]
    assert {r["status"] for r in rows} == {"COMPLETED"}
    for row in rows:
        assert os.path.exists(directory / f"trial_{row['trial']}" / "best.weights.h5")
        assert float(row["seconds"]) > 0 and row["model.embedding_dim"] in ("8", "16")
    scores = {r["trial"]: float(r[OBJ]) for r in rows}
    best_id = _best_trial_id(directory)
    assert scores[best_id] == max(scores.values())
    assert f"best trial {best_id}: {OBJ} = {max(scores.values()):.4f}" in out
    assert (directory / "results.md").read_text().count(f"| {best_id} * |") == 1
    if algorithm == "hyperband":
        assert {r["budget_epochs"] for r in rows} == {"1", "2"}
    if algorithm == "random":  # progress per trial
        assert "Search: Running Trial #1" in out and "[tuner0] trial 1 done: valid/ndcg@10 = " in out

    best = load_config(directory / "best.yaml")
    best_row = next(r for r in rows if r["trial"] == best_id)
    assert str(best.model.embedding_dim) == best_row["model.embedding_dim"]
    assert best.train.learning_rate == pytest.approx(float(best_row["train.learning_rate"]))
    assert main(["train", "--config", str(directory / "best.yaml"), "--variant", "id", "--quiet"]) == 0
    with open(os.path.join(best.train.model_dir, "loo", "id", "result.json"), encoding="utf-8") as f:
        retrained = json.load(f)
    # Same config, same seed: `tfrec-llm train` reproduces the best trial.
    assert retrained["valid_metrics"]["ndcg@10"] == pytest.approx(scores[best_id], abs=1e-6)
    if algorithm == "random":
        _check_retrain_compare_and_export(tiny_config_file, tmp_path, directory, scores[best_id], capsys)


def _check_retrain_compare_and_export(config_file, tmp_path, directory, best_score, capsys):
    """The same search again (nothing left to run), with --retrain-best --compare-default and
    --export-dir."""
    export_dir = tmp_path / "export"
    args = _tune_args(config_file, directory, "--algorithm", "random", "--quiet")
    capsys.readouterr()
    assert main(args + ["--retrain-best", "--compare-default", "--export-dir", str(export_dir)]) == 0
    out = capsys.readouterr().out
    assert "resuming the search in" in out and "[tuner0] trial" not in out
    best_id = _best_trial_id(directory)
    table = (directory / "comparison.md").read_text()
    models = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert models == [
        "Random",
        "MostPop",
        "TwoTower-ID default",
        f"TwoTower-ID tuned (trial {best_id})",
    ]
    assert table.splitlines()[0].startswith("| model | A valid ndcg@10 |")
    assert "A test ndcg@10" in table
    assert table in out
    records = json.loads((directory / "comparison.json").read_text())
    valid = {
        r["model"]: r["value"]
        for r in records
        if r["split"] == "valid" and r["metric"] == "ndcg" and r["k"] == 10
    }
    assert valid[f"TwoTower-ID tuned (trial {best_id})"] == pytest.approx(best_score, abs=1e-6)
    versions = os.listdir(export_dir / "retrieval")
    assert len(versions) == 1 and os.path.exists(export_dir / "retrieval" / versions[0] / "saved_model.pb")


def test_bad_distributed_environment_is_named(tiny_config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT", raising=False)
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    assert main(_tune_args(tiny_config_file, tmp_path / "s")) == 2
    assert re.search(
        r"distributed tuning needs .*\['KERASTUNER_ORACLE_PORT', 'KERASTUNER_TUNER_ID'\] not set",
        capsys.readouterr().err,
    )


def _completed_trial(directory, process, log_path, timeout=240.0):
    """Waits until a trial.json under ``directory`` says COMPLETED; returns that trial's id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            path = os.path.join(directory, name, "trial.json")
            if name.startswith("trial_") and os.path.exists(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        if json.load(f)["status"] == "COMPLETED":
                            return name[len("trial_") :]
                except (ValueError, KeyError):  # being written
                    pass
        if process.poll() is not None:
            pytest.fail(
                f"search ended (rc {process.returncode}) before a trial completed:\n"
                + Path(log_path).read_text()
            )
        time.sleep(0.1)
    pytest.fail(f"no trial completed in {timeout} s:\n{Path(log_path).read_text()}")


def test_killed_search_resumes_without_running_finished_trials_again(tiny_config_file, tmp_path, start_cli):
    directory = tmp_path / "s"
    args = _tune_args(tiny_config_file, directory, "--algorithm", "random", "--max-trials", "2")
    first = start_cli(args, str(tmp_path / "first.log"))
    done = _completed_trial(str(directory), first, str(tmp_path / "first.log"))
    first.send_signal(signal.SIGKILL)
    first.wait()
    finished = directory / f"trial_{done}"
    before = {p.name: p.stat().st_mtime_ns for p in finished.iterdir() if p.is_file()}
    assert {"trial.json", "best.weights.h5", "validation.json"} <= set(before)

    second = start_cli(args, str(tmp_path / "second.log"))
    assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert "resuming the search in" in log
    assert f"[tuner0] trial {done}:" not in log  # not trained again
    rows = _rows(directory)
    assert [r["trial"] for r in rows] == ["0", "1"]
    assert {r["status"] for r in rows} == {"COMPLETED"}
    assert {p.name: p.stat().st_mtime_ns for p in finished.iterdir() if p.is_file()} == before


def test_chief_and_two_workers_run_every_trial_once(tiny_config_file, tmp_path, start_cli, free_port):
    directory = tmp_path / "s"
    args = _tune_args(tiny_config_file, directory, "--algorithm", "random", "--max-trials", "3")
    env = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port)}
    env.update({"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"})  # 3 processes, 2 cores
    chief = start_cli(args, str(tmp_path / "chief.log"), {**env, "KERASTUNER_TUNER_ID": "chief"})
    workers = [
        start_cli(args, str(tmp_path / f"tuner{i}.log"), {**env, "KERASTUNER_TUNER_ID": f"tuner{i}"})
        for i in range(2)
    ]
    for i, worker in enumerate(workers):
        assert worker.wait(timeout=300) == 0, (tmp_path / f"tuner{i}.log").read_text()
    assert chief.wait(timeout=60) == 0, (tmp_path / "chief.log").read_text()

    runs = []
    for i in range(2):
        log = (tmp_path / f"tuner{i}.log").read_text()
        assert "worker of the search" in log and "no trials left; the chief writes the results" in log
        runs += [(f"tuner{i}", trial) for trial in re.findall(rf"\[tuner{i}\] trial (\d+):", log)]
    assert sorted(trial for _, trial in runs) == ["0", "1", "2"]  # every trial run, and only once
    rows = _rows(directory)
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert {r["status"] for r in rows} == {"COMPLETED"}
    chief_log = (tmp_path / "chief.log").read_text()
    assert "chief: serving the oracle on 127.0.0.1:" in chief_log
    assert f"best trial {_best_trial_id(directory)}" in chief_log
