"""Tests for tfrec_llm.tuning.oracles: KerasTuner state files replaced atomically."""

import json
import os

import keras_tuner
import pytest

from tfrec_llm import atomic_io
from tfrec_llm.tuning import oracles


def test_save_json_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "state.json")
    oracles.save_json_atomically(path, {"a": 1})
    oracles.save_json_atomically(path, {"a": [2, 3]})
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": [2, 3]}
    assert os.listdir(tmp_path) == ["state.json"]


def test_a_write_that_dies_midway_keeps_the_previous_state(tmp_path, monkeypatch):
    path = str(tmp_path / "oracle.json")
    oracles.save_json_atomically(path, {"trials": 1})

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(atomic_io.json, "dump", die)
    with pytest.raises(KeyboardInterrupt):
        oracles.save_json_atomically(path, {"trials": 2})
    assert json.loads((tmp_path / "oracle.json").read_text()) == {"trials": 1}
    assert os.listdir(tmp_path) == ["oracle.json"]  # the temporary file is gone


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (oracles.RandomSearchOracle, {"max_trials": 2}),
        (oracles.HyperbandOracle, {"max_epochs": 2, "factor": 2}),
        (oracles.BayesianOptimizationOracle, {"max_trials": 2}),
    ],
)
def test_oracles_write_loadable_state_through_the_atomic_path(cls, kwargs, tmp_path, monkeypatch):
    writes = []
    real = oracles.save_json_atomically
    monkeypatch.setattr(
        oracles,
        "save_json_atomically",
        lambda path, state: (writes.append(path), real(path, state)),
    )
    hp = keras_tuner.HyperParameters()
    hp.Choice("model.embedding_dim", [8, 16, 32])
    oracle = cls(
        objective=keras_tuner.Objective("valid/ndcg@10", "max"),
        hyperparameters=hp,
        seed=3,
        **kwargs,
    )
    oracle.verbose = 0
    oracle._set_project_dir(str(tmp_path), "search")
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"valid/ndcg@10": 0.25})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    trial_json = os.path.join(str(tmp_path), "search", f"trial_{trial.trial_id}", "trial.json")
    assert set(writes) == {os.path.join(str(tmp_path), "search", "oracle.json"), trial_json}
    reloaded = cls(
        objective=keras_tuner.Objective("valid/ndcg@10", "max"),
        hyperparameters=hp,
        seed=3,
        **kwargs,
    )
    reloaded._set_project_dir(str(tmp_path), "search")
    reloaded.reload()
    assert reloaded.trials[trial.trial_id].status == "COMPLETED"
    assert reloaded.trials[trial.trial_id].score == 0.25
