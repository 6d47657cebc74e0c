"""Tests for tfrec_llm.tuning.results: records of KerasTuner trials, the tables, best.yaml."""

import csv
import os

import keras_tuner
from keras_tuner.engine import trial as trial_module

from tfrec_llm.config import ExperimentConfig, HyperParameterSpec, TuneConfig, load_config, replace
from tfrec_llm.tuning.results import (
    TrialRecord,
    best_config,
    best_record,
    markdown_table,
    trial_records,
    write_best_config,
    write_csv,
    write_markdown,
)

OBJ = "valid/ndcg@10"
NAMES = ["model.embedding_dim", "train.learning_rate"]


def _trial(trial_id, status, values, metrics=None):
    hp = keras_tuner.HyperParameters()
    hp.Choice("model.embedding_dim", [8, 16])
    hp.Float("train.learning_rate", 0.001, 0.1)
    trial = trial_module.Trial(hp.copy(), trial_id=trial_id, status=status)
    trial.hyperparameters.values = dict(values)
    for name, value in (metrics or {}).items():
        trial.metrics.update(name, value)
    return trial


def _metrics(score, seconds=2.5, best_epoch=1.0, epochs_run=2.0):
    return {
        OBJ: score,
        "valid/hr@10": 0.9,
        "seconds": seconds,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
    }


def _records():
    trials = [
        _trial("2", "RUNNING", {"model.embedding_dim": 16, "train.learning_rate": 0.02}),
        _trial(
            "0",
            "COMPLETED",
            {"model.embedding_dim": 8, "train.learning_rate": 0.01},
            _metrics(0.25),
        ),
        _trial(
            "1",
            "COMPLETED",
            {"model.embedding_dim": 16, "train.learning_rate": 0.05},
            _metrics(0.5, 3.25, 0.0, 1.0),
        ),
        _trial("3", "COMPLETED", {"model.embedding_dim": 8, "train.learning_rate": 0.03}, _metrics(0.5)),
    ]
    return trial_records(trials, OBJ)


def test_records_are_sorted_and_hold_values_scores_and_epochs():
    records = _records()
    assert [r.trial_id for r in records] == ["0", "1", "2", "3"]
    first = records[0]
    assert first == TrialRecord(
        "0",
        "COMPLETED",
        {"model.embedding_dim": 8, "train.learning_rate": 0.01},
        None,
        0.25,
        2.5,
        2,
        2,
    )
    running = records[2]
    assert (running.status, running.score, running.seconds, running.best_epoch) == (
        "RUNNING",
        None,
        None,
        None,
    )


def test_best_record_is_the_highest_score_and_the_earliest_on_ties():
    records = _records()
    assert best_record(records).trial_id == "1"  # 1 and 3 both score 0.5
    assert best_record([r for r in records if r.status != "COMPLETED"]) is None


def test_hyperband_budget_is_a_column_and_not_a_hyperparameter():
    trial = _trial(
        "0000",
        "COMPLETED",
        {
            "model.embedding_dim": 8,
            "train.learning_rate": 0.01,
            "tuner/epochs": 3,
            "tuner/initial_epoch": 0,
            "tuner/bracket": 1,
            "tuner/round": 0,
        },
        _metrics(0.1),
    )
    (record,) = trial_records([trial], OBJ)
    assert record.budget == 3
    assert record.values == {"model.embedding_dim": 8, "train.learning_rate": 0.01}
    assert markdown_table([record], NAMES, OBJ).splitlines()[0] == (
        "| trial | status | model.embedding_dim | train.learning_rate | budget_epochs "
        "| valid/ndcg@10 | seconds "
        "| best_epoch | epochs_run |"
    )


def test_csv_has_one_row_per_trial(tmp_path):
    path = tmp_path / "results.csv"
    write_csv(_records(), NAMES, OBJ, path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows == [
        [
            "trial",
            "status",
            "model.embedding_dim",
            "train.learning_rate",
            OBJ,
            "seconds",
            "best_epoch",
            "epochs_run",
        ],
        ["0", "COMPLETED", "8", "0.01", "0.25", "2.5", "2", "2"],
        ["1", "COMPLETED", "16", "0.05", "0.5", "3.25", "1", "1"],
        ["2", "RUNNING", "16", "0.02", "", "", "", ""],
        ["3", "COMPLETED", "8", "0.03", "0.5", "2.5", "2", "2"],
    ]


def test_markdown_marks_the_best_trial(tmp_path):
    path = tmp_path / "results.md"
    write_markdown(_records(), NAMES, OBJ, path, "Search x")
    lines = path.read_text().splitlines()
    assert lines[0] == "# Search x"
    assert lines[4] == "| 0 | COMPLETED | 8 | 0.01 | 0.25 | 2.5 | 2 | 2 |"
    assert lines[5] == "| 1 * | COMPLETED | 16 | 0.05 | 0.5 | 3.25 | 1 | 1 |"
    assert lines[6] == "| 2 | RUNNING | 16 | 0.02 |  |  |  |  |"
    assert lines[-1] == "Best: trial 1, valid/ndcg@10 = 0.5 (marked *). 3 of 4 trials completed."
    write_markdown([], NAMES, OBJ, path, "empty")
    assert path.read_text().splitlines()[-1] == "No completed trial yet (0 started)."


def test_best_config_is_the_trial_config_in_its_own_model_dir(tmp_path):
    space = (HyperParameterSpec("model.embedding_dim", "choice", values=("8", "16")),)
    cfg = replace(
        ExperimentConfig(),
        train__refit_on_train_valid=True,
        train__model_dir="runs/base",
        tune=TuneConfig(space=space, objective="hr@20"),
    )
    record = TrialRecord("07", "COMPLETED", {"model.embedding_dim": 16}, 3, 0.5, 1.0, 1, 2)
    best = best_config(cfg, record, "/s/dir")
    assert best.model.embedding_dim == 16
    assert best.train.model_dir == os.path.join("/s/dir", "best", "trial_07")
    assert best.text.cache_dir == os.path.join("runs/base", "text_cache")  # the base run's cache
    assert best.train.epochs == 3  # Hyperband budget
    assert best.train.monitor == "hr@20"
    assert best.train.refit_on_train_valid is True  # the base config's choice, not the trial's
    path = tmp_path / "best.yaml"
    write_best_config(best, path, ["best trial 07", "second line"])
    assert path.read_text().startswith("# best trial 07\n# second line\nname: ")
    assert load_config(path) == best
