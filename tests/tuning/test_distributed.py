"""Tests for tfrec_llm.tuning.distributed: roles from KerasTuner's variables, the oracle server.

The end-to-end chief + two workers run is in test_tune_commands.py.
"""

import socket
import threading

import keras_tuner
import pytest
from keras_tuner.src.distribute.oracle_client import OracleClient

from tfrec_llm.errors import ConfigError
from tfrec_llm.tuning import oracles
from tfrec_llm.tuning.distributed import is_distributed_chief, is_distributed_worker, serve_oracle


@pytest.mark.parametrize(
    "tuner_id, worker, chief",
    [(None, False, False), ("chief", False, True), ("tuner1", True, False)],
)
def test_role_comes_from_keras_tuner_variables(tuner_id, worker, chief, monkeypatch):
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(name, raising=False)
    if tuner_id:
        monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    assert (is_distributed_worker(), is_distributed_chief()) == (worker, chief)


def _oracle(tmp_path, max_trials):
    hp = keras_tuner.HyperParameters()
    hp.Choice("model.embedding_dim", [8, 16, 32])
    oracle = oracles.RandomSearchOracle(
        objective=keras_tuner.Objective("valid/ndcg@10", "max"),
        max_trials=max_trials,
        hyperparameters=hp,
        seed=1,
    )
    oracle.verbose = 0
    oracle._set_project_dir(str(tmp_path), "search")
    return oracle


def test_server_hands_out_every_trial_once_and_returns_when_done(tmp_path, free_port, monkeypatch):
    oracle = _oracle(tmp_path, max_trials=3)
    server = threading.Thread(target=serve_oracle, args=(oracle, f"127.0.0.1:{free_port}", 0.05))
    server.start()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    client = OracleClient(oracle)
    seen = []
    while True:
        trial = client.create_trial("tuner0")
        if trial.status == "STOPPED":
            break
        client.update_trial(trial.trial_id, {"valid/ndcg@10": 0.1 * len(seen)})
        trial.status = "COMPLETED"
        client.end_trial(trial)
        seen.append(trial.trial_id)
    server.join(timeout=30)
    assert not server.is_alive()
    assert seen == ["0", "1", "2"]
    assert {t.status for t in oracle.trials.values()} == {"COMPLETED"}
    assert oracle.get_best_trials(1)[0].trial_id == "2"


def test_server_on_a_busy_port_is_named(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"cannot listen on '127.0.0.1:{port}' .* is the port free\?"):
            serve_oracle(_oracle(tmp_path, 1), f"127.0.0.1:{port}")
