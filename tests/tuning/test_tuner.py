"""Tests for tfrec_llm.tuning.tuner and .trials: trials, best weights, resume, and the errors of a search."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tf_keras as keras

from tfrec_llm.config import load_config, replace
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.prepare import prepare
from tfrec_llm.experiments.runs import build_model
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.trainer import TrainResult
from tfrec_llm.tuning import oracles
from tfrec_llm.tuning import trials as trials_module
from tfrec_llm.tuning.tuner import build_tuner


def _seed(cfg):
    keras.utils.set_random_seed(cfg.train.seed)


def _prepared(cfg, dataset, text_dim=6):
    prepared = prepare(cfg, "loo", with_text=False, dataset=dataset)
    rng = np.random.default_rng(0)
    text = rng.normal(size=(prepared.catalog.num_items, text_dim)).astype(np.float32)
    return dataclasses.replace(prepared, text_embeddings=text)


def _fake_training(calls, score_of=lambda cfg: 0.1):
    """Stands in for train_variant: records each config, returns fixed VALID metrics."""

    def train(cfg, prepared, variant, model_dir, verbose=0):
        calls.append((cfg, variant, model_dir))
        score = score_of(cfg)
        metrics = {"recall@10": 2 * score, "hr@10": 2 * score, "ndcg@10": score, "users": 40}
        return TrainResult(None, 1, metrics, 3, 3, 0.0)

    return train


def test_search_with_random_text_matrix_keeps_best_weights_and_resumes(
    tiny_config, tiny_dataset, tmp_path, capsys, monkeypatch
):
    cfg = tiny_config
    prepared = _prepared(cfg, tiny_dataset)
    directory = str(tmp_path / "search")
    tuner = build_tuner(replace(cfg, tune__max_trials=1), directory, "bert", trial_setup=_seed)
    tuner.search(prepared, verbose=0)
    summary = tuner.write_results()

    assert [r.status for r in summary.records] == ["COMPLETED"]
    assert summary.best == summary.records[0]
    for record in summary.records:
        trial_dir = os.path.join(directory, f"trial_{record.trial_id}")
        for name in ("trial.json", "config.yaml", "validation.json", "best.weights.h5"):
            assert os.path.exists(os.path.join(trial_dir, name)), name
        # The saved best weights reproduce the trial's VALID score.
        trial_cfg = load_config(os.path.join(trial_dir, "config.yaml"))
        assert trial_cfg.model.embedding_dim == record.values["model.embedding_dim"]
        model = build_model(trial_cfg, prepared, "bert")
        model.load_weights(os.path.join(trial_dir, "best.weights.h5"))
        valid = evaluate(
            TwoTowerScorer(model, prepared.catalog),
            prepared.split.valid,
            prepared.split.item_ids,
            ks=(10,),
        )
        assert valid["ndcg@10"] == pytest.approx(record.score, abs=1e-6)
    capsys.readouterr()

    # Restarting with the same directory runs nothing that finished.
    calls = []
    monkeypatch.setattr(trials_module, "train_variant", _fake_training(calls))
    again = build_tuner(replace(cfg, tune__max_trials=1), directory, "bert", trial_setup=_seed)
    assert "resuming the search in" in capsys.readouterr().out
    again.search(prepared, verbose=0)
    assert calls == []

    # ... and with more trials runs only the new ones.
    more = build_tuner(replace(cfg, tune__max_trials=3), directory, "bert", trial_setup=_seed)
    more.search(prepared, verbose=0)
    assert [c[2] for c in calls] == [
        os.path.join(directory, "trial_1"),
        os.path.join(directory, "trial_2"),
    ]
    assert [r.trial_id for r in more.write_results().records] == ["0", "1", "2"]


def test_run_trial_averages_executions_and_uses_the_hyperband_budget(
    tiny_config, tiny_dataset, tmp_path, monkeypatch
):
    cfg = replace(
        tiny_config,
        train__epochs=4,
        tune=dataclasses.replace(tiny_config.tune, algorithm="hyperband", executions=2),
    )
    calls = []
    monkeypatch.setattr(
        trials_module, "train_variant", _fake_training(calls, lambda c: 0.1 * (c.train.seed - 41))
    )
    tuner = build_tuner(cfg, str(tmp_path / "hb"), "id")
    tuner.search(prepare(cfg, "loo", with_text=False, dataset=tiny_dataset), verbose=0)
    summary = tuner.write_results()
    assert len(calls) == 2 * len(summary.records)
    for record in summary.records:
        # seeds 42 and 43 score 0.1 and 0.2: the trial scores their mean
        assert record.score == pytest.approx(0.15)
        assert record.best_epoch == 2 and record.epochs_run == 3
    budgets = sorted({c[0].train.epochs for c in calls})
    assert budgets == sorted({r.budget for r in summary.records}) == [1, 2, 4]
    assert {c[0].train.seed for c in calls} == {42, 43}
    assert {os.path.basename(c[2]) for c in calls if c[0].train.seed == 43} == {"execution_1"}


def test_lost_tuner_file_still_resumes(tiny_config, tiny_dataset, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(trials_module, "train_variant", _fake_training(calls))
    directory = str(tmp_path / "s")
    prepared = prepare(tiny_config, "loo", with_text=False, dataset=tiny_dataset)
    build_tuner(tiny_config, directory, "id").search(prepared, verbose=0)
    assert len(calls) == 2
    os.remove(os.path.join(directory, "tuner0.json"))  # killed between the oracle's and the tuner's save
    capsys.readouterr()
    again = build_tuner(tiny_config, directory, "id")
    assert "resuming the search" in capsys.readouterr().out
    again.search(prepared, verbose=0)
    assert len(calls) == 2


def test_restart_with_another_config_is_refused(tiny_config, tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(trials_module, "train_variant", _fake_training([]))
    directory = str(tmp_path / "s")
    build_tuner(tiny_config, directory, "id").search(
        prepare(tiny_config, "loo", with_text=False, dataset=tiny_dataset), verbose=0
    )
    with pytest.raises(ConfigError, match=r"holds a search started with another config or variant"):
        build_tuner(replace(tiny_config, train__batch_size=32), directory, "id")
    with pytest.raises(ConfigError, match=r"holds a search started with another config or variant"):
        build_tuner(tiny_config, directory, "bert")
    # overwrite starts over
    fresh = build_tuner(replace(tiny_config, train__batch_size=32), directory, "id", overwrite=True)
    assert fresh.oracle.trials == {}


def test_search_checks_its_data(tiny_config, tiny_dataset, tmp_path):
    tuner = build_tuner(tiny_config, str(tmp_path / "s"), "bert")
    no_text = prepare(tiny_config, "loo", with_text=False, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match=r"variant 'bert' needs text embeddings"):
        tuner.search(no_text, verbose=0)
    with pytest.raises(ConfigError, match=r"search\(\) needs the prepared data set"):
        tuner.search(None, verbose=0)
    cold = prepare(tiny_config, "cold-items", with_text=False, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match=r"prepared.split.protocol='cold-items' but tune.protocol='loo'"):
        tuner.search(cold, verbose=0)
    with pytest.raises(ConfigError, match=r"variant='ids'; expected one of"):
        build_tuner(tiny_config, str(tmp_path / "t"), "ids")


def test_a_variant_that_fixes_a_searched_field_is_refused(tiny_config, tmp_path):
    # The fixture's space searches train.learning_rate, which the mean variant sets for every
    # trial: the search would train one setting over and over.
    with pytest.raises(
        ConfigError,
        match=r"variant 'mean' fixes train.learning_rate, so a search over them would train the same",
    ):
        build_tuner(tiny_config, str(tmp_path / "m"), "mean")
    assert build_tuner(tiny_config, str(tmp_path / "b"), "bert").variant == "bert"


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in KerasTuner catches it."""


def _resume_runs_trial_1_only(cfg, directory, prepared, calls, capsys, announced):
    """Restarts the killed search: it prints ``announced``, trains trial 1 (never trial 0 again)
    and records both trials as COMPLETED."""
    capsys.readouterr()
    again = build_tuner(cfg, directory, "id")
    assert announced in capsys.readouterr().out
    again.search(prepared, verbose=1)
    out = capsys.readouterr().out
    assert "[tuner0] trial 0:" not in out and "[tuner0] trial 1:" in out
    assert [os.path.basename(c[2]) for c in calls] == ["trial_0", "trial_1"]
    summary = again.write_results()
    assert [(r.trial_id, r.status) for r in summary.records] == [
        ("0", "COMPLETED"),
        ("1", "COMPLETED"),
    ]


def test_kill_between_trial_file_and_oracle_file_does_not_rerun_the_trial(
    tiny_config, tiny_dataset, tmp_path, monkeypatch, capsys
):
    # KerasTuner's end_trial writes trial_<id>/trial.json (COMPLETED), then oracle.json. A kill
    # in between leaves the finished trial "ongoing" in oracle.json.
    calls = []
    monkeypatch.setattr(trials_module, "train_variant", _fake_training(calls))
    save_trial = oracles.AtomicStateFiles._save_trial

    def save_trial_then_die(self, trial):
        save_trial(self, trial)
        if trial.status == "COMPLETED":
            raise _Killed

    monkeypatch.setattr(oracles.AtomicStateFiles, "_save_trial", save_trial_then_die)
    directory = str(tmp_path / "s")
    prepared = prepare(tiny_config, "loo", with_text=False, dataset=tiny_dataset)
    with pytest.raises(_Killed):
        build_tuner(tiny_config, directory, "id").search(prepared, verbose=0)
    with open(os.path.join(directory, "oracle.json"), encoding="utf-8") as f:
        assert json.load(f)["ongoing_trials"] == {"tuner0": "0"}
    assert len(calls) == 1
    monkeypatch.setattr(oracles.AtomicStateFiles, "_save_trial", save_trial)

    _resume_runs_trial_1_only(tiny_config, directory, prepared, calls, capsys, "resuming the search in")


def test_kill_between_new_trial_file_and_oracle_file_runs_the_trial_on_resume(
    tiny_config, tiny_dataset, tmp_path, monkeypatch, capsys
):
    # KerasTuner's create_trial writes the new trial_<id>/trial.json (RUNNING), then oracle.json.
    # A kill in between leaves a trial that oracle.json neither lists as ongoing nor as ended:
    # KerasTuner's reload would count it against max_trials and never run it. (This is the
    # state CI caught once in the kill-and-resume CLI test, where the kill lands by timing.)
    calls = []
    monkeypatch.setattr(trials_module, "train_variant", _fake_training(calls))
    save_trial = oracles.AtomicStateFiles._save_trial

    def save_trial_then_die(self, trial):
        save_trial(self, trial)
        if trial.trial_id == "1" and trial.status == "RUNNING":
            raise _Killed

    monkeypatch.setattr(oracles.AtomicStateFiles, "_save_trial", save_trial_then_die)
    directory = str(tmp_path / "s")
    prepared = prepare(tiny_config, "loo", with_text=False, dataset=tiny_dataset)
    with pytest.raises(_Killed):
        build_tuner(tiny_config, directory, "id").search(prepared, verbose=0)
    with open(os.path.join(directory, "oracle.json"), encoding="utf-8") as f:
        state = json.load(f)
    assert state["ongoing_trials"] == {} and state["end_order"] == ["0"]
    with open(os.path.join(directory, "trial_1", "trial.json"), encoding="utf-8") as f:
        assert json.load(f)["status"] == "RUNNING"
    assert len(calls) == 1
    monkeypatch.setattr(oracles.AtomicStateFiles, "_save_trial", save_trial)

    _resume_runs_trial_1_only(
        tiny_config, directory, prepared, calls, capsys, "interrupted trial(s) ['1'] resume"
    )
