"""KerasTuner's oracles, with state files that a kill cannot leave half written.

KerasTuner writes ``oracle.json``, ``trial_<id>/trial.json`` and ``<tuner id>.json`` by opening
the file for writing and writing the JSON into it. A search killed in between (SIGKILL, a
preempted VM, a Colab disconnect) leaves an empty or truncated file, and the restarted search
fails to load it. These subclasses write each file aside and rename it into place, so a
restart always finds the previous complete state.
"""

from __future__ import annotations

import os
from typing import Any

import keras_tuner

from tfrec_llm.atomic_io import write_json


def save_json_atomically(path: str, state: Any) -> None:
    """Writes ``state`` as JSON to ``path`` via a temporary file and a rename."""
    write_json(path, state, indent=None)


class AtomicStateFiles:
    """Oracle mixin: ``oracle.json`` and each ``trial.json`` are replaced atomically."""

    def save(self) -> None:
        save_json_atomically(self._get_oracle_fname(), self.get_state())  # type: ignore[attr-defined]

    def _save_trial(self, trial: Any) -> None:
        folder = self._get_trial_dir(trial.trial_id)  # type: ignore[attr-defined]
        save_json_atomically(os.path.join(folder, "trial.json"), trial.get_state())


class RandomSearchOracle(AtomicStateFiles, keras_tuner.oracles.RandomSearchOracle):
    """``keras_tuner.oracles.RandomSearchOracle`` with atomic state files."""


class HyperbandOracle(AtomicStateFiles, keras_tuner.oracles.HyperbandOracle):
    """``keras_tuner.oracles.HyperbandOracle`` with atomic state files."""


class BayesianOptimizationOracle(AtomicStateFiles, keras_tuner.oracles.BayesianOptimizationOracle):
    """``keras_tuner.oracles.BayesianOptimizationOracle`` with atomic state files."""
