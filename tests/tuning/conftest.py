"""Fixtures of the tuning tests: the tiny clustered data set as CSV files and a tiny search config.

Trials train the two-tower model for 1-2 epochs on 40 users x 30 items, so a trial costs a few
seconds (mostly graph tracing); searches run 2-5 trials.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tfrec_llm.config import (
    ExperimentConfig,
    HyperParameterSpec,
    TuneConfig,
    config_from_dict,
    dump_config,
    replace,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_SPACE = (
    HyperParameterSpec("model.embedding_dim", "choice", values=("8", "16")),
    HyperParameterSpec("train.learning_rate", "float", min=0.003, max=0.03, sampling="log"),
)


def write_tiny_csv(dataset, folder) -> dict[str, str]:
    """Writes the data set as interactions/items/users CSV files; returns the data section."""
    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(folder, f"{name}.csv") for name in ("interactions", "items", "users")}
    dataset.interactions.to_csv(paths["interactions"], index=False)
    dataset.items.to_csv(paths["items"], index=False)
    dataset.users.to_csv(paths["users"], index=False)
    return {
        "source": "csv",
        "path": paths["interactions"],
        "items_path": paths["items"],
        "users_path": paths["users"],
        "item_text_fields": list(dataset.item_text_fields),
        "item_categorical_fields": list(dataset.item_categorical_fields),
        "user_profile_fields": list(dataset.user_profile_fields),
    }


@pytest.fixture()
def tiny_config(tiny_dataset, tmp_path) -> ExperimentConfig:
    """A config reading the tiny CSV data set: 2 epochs, tiny towers, a 2-dimensional space."""
    data = write_tiny_csv(tiny_dataset, str(tmp_path / "data"))
    cfg = config_from_dict({"data": data})
    return replace(
        cfg,
        model__history_length=5,
        model__text_projection_dim=8,
        train__epochs=2,
        train__batch_size=64,
        train__shuffle_buffer=1000,
        # No TRAIN+VALID refit, whatever the default: best.yaml keeps the base config's refit
        # setting, and only without it is the retrained best the trial's model on VALID.
        train__refit_on_train_valid=False,
        train__model_dir=str(tmp_path / "runs"),
        eval__ks=(10,),
        tune=TuneConfig(max_trials=2, space=TINY_SPACE, hyperband_factor=2),
    )


@pytest.fixture()
def tiny_config_file(tiny_config, tmp_path) -> str:
    path = str(tmp_path / "tiny.yaml")
    dump_config(tiny_config, path)
    return path


@pytest.fixture()
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def start_cli():
    """Starts ``python -m tfrec_llm.cli.main ARGS`` with stdout+stderr in a log file.

    Returns a function ``(args, log_path, env=None) -> Popen``; processes still running at the
    end of the test are killed.
    """
    processes: list[subprocess.Popen] = []

    def start(args: list[str], log_path: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        full_env = dict(os.environ)
        full_env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
        full_env.update(env or {})
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tfrec_llm.cli.main", *args],
                cwd=REPO,
                env=full_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
