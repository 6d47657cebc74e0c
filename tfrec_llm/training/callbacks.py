"""Keras callbacks of the training loop."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import tf_keras as keras

from tfrec_llm.atomic_io import atomic_path, write_json

logger = logging.getLogger(__name__)


class FullRankingValidation(keras.callbacks.Callback):
    """Evaluates VALID with the full-ranking evaluator after each epoch; keeps the best weights.

    ``FactorizedTopK`` accuracy ranks items the user has already seen, so it is not the metric
    we report; this callback calls our evaluator (history masking, tie priority) instead,
    adds ``valid/<metric>`` to the epoch logs (TensorBoard, progress bar), saves the weights
    whenever the monitored metric improves, and stops training after ``patience`` epochs
    without improvement.

    Everything it decides from is persisted in ``<directory>/validation.json`` and the best
    weights in ``<directory>/best.weights.h5``, so a run resumed by ``BackupAndRestore`` after a
    kill picks up the same best score and patience counter.

    Args:
        evaluate_fn: Returns VALID metrics (e.g. ``{"ndcg@10": ...}``) for the current weights.
        directory: Where the history and best weights go.
        monitor: Metric key to maximise.
        patience: Epochs without improvement before stopping.
    """

    def __init__(
        self,
        evaluate_fn: Callable[[], dict[str, float]],
        directory: str,
        monitor: str = "ndcg@10",
        patience: int = 3,
    ) -> None:
        super().__init__()
        self.evaluate_fn = evaluate_fn
        self.directory = directory
        self.monitor = monitor
        self.patience = patience
        self.history: list[dict[str, Any]] = []
        os.makedirs(directory, exist_ok=True)

    @property
    def history_path(self) -> str:
        return os.path.join(self.directory, "validation.json")

    @property
    def weights_path(self) -> str:
        return os.path.join(self.directory, "best.weights.h5")

    @property
    def best(self) -> dict[str, Any] | None:
        """The history entry with the highest monitored value (earliest on ties)."""
        if not self.history:
            return None
        return max(self.history, key=lambda h: (h["metrics"][self.monitor], -h["epoch"]))

    def load_history(self) -> None:
        """Reads the persisted history of a previous (killed) run of the same model_dir."""
        if os.path.exists(self.history_path):
            with open(self.history_path, encoding="utf-8") as f:
                self.history = json.load(f)
            logger.info("resuming: %d validated epochs found in %s", len(self.history), self.history_path)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Epochs at or after the resume point will be trained again: forget their results.
        self.history = [h for h in self.history if h["epoch"] < epoch]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = self.evaluate_fn()
        if self.monitor not in metrics:
            raise KeyError(f"monitor={self.monitor!r} is not among the validation metrics {sorted(metrics)}")
        previous_best = self.best
        self.history.append(
            {"epoch": epoch, "loss": float((logs or {}).get("loss", float("nan"))), "metrics": metrics}
        )
        if previous_best is None or metrics[self.monitor] > previous_best["metrics"][self.monitor]:
            with atomic_path(self.weights_path) as tmp:
                self.model.save_weights(tmp)
        write_json(self.history_path, self.history)
        if logs is not None:
            for key, value in metrics.items():
                if key != "users":
                    logs[f"valid/{key}"] = value
        best = self.best
        assert best is not None
        if epoch - best["epoch"] >= self.patience:
            logger.info(
                "early stopping: valid/%s has not improved for %d epochs", self.monitor, self.patience
            )
            self.model.stop_training = True


def fit_with_validation(
    model: keras.Model,
    dataset: Any,
    *,
    model_dir: str,
    log_dir: str,
    validation: FullRankingValidation | None,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: int = 1,
) -> tuple[int, dict[str, float], int, int]:
    """``model.fit`` with the validation callback, ``BackupAndRestore`` and TensorBoard, in that order.

    A run killed before resumes from ``<model_dir>/backup`` (and ``validation`` from its
    history); after training the best VALID weights are loaded back into ``model``.

    Args:
        model: A compiled model.
        dataset: The training dataset.
        model_dir: Holds ``backup/``.
        log_dir: TensorBoard folder.
        validation: Early stopping and best weights; None trains ``epochs`` without it.
        epochs: Upper bound on epochs.
        callbacks: More Keras callbacks, run after these (the epoch is checkpointed by then).
        verbose: Keras progress output.

    Returns:
        ``(best_epoch, valid_metrics, epochs_run, epochs_this_run)``: best_epoch is -1 and
        valid_metrics empty without validation; epochs_run counts the epochs before a resume.
    """
    backup = os.path.join(model_dir, "backup")
    all_callbacks: list[keras.callbacks.Callback] = []
    if validation is not None:
        if os.path.isdir(backup):
            validation.load_history()
        all_callbacks.append(validation)
    all_callbacks += [
        keras.callbacks.BackupAndRestore(backup),
        keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0),
        *callbacks,
    ]
    history = model.fit(dataset, epochs=epochs, callbacks=all_callbacks, verbose=verbose)
    if validation is not None and validation.best is not None:
        model.load_weights(validation.weights_path)
        epochs_run = int(validation.history[-1]["epoch"]) + 1
        return int(validation.best["epoch"]), dict(validation.best["metrics"]), epochs_run, len(history.epoch)
    return -1, {}, len(history.epoch), len(history.epoch)
