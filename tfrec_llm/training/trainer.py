"""Compile, fit with full-ranking early stopping, checkpoint, resume.

Layout of ``model_dir``::

    backup/               BackupAndRestore checkpoint of the epoch in progress (resume after a kill)
    logs/                 TensorBoard (loss per epoch, valid/<metric>@<k>)
    validation.json       VALID metrics of every epoch
    best.weights.h5       weights of the best VALID epoch

Example:
    >>> result = train_two_tower(cfg, split, catalog, text_embeddings, "runs/ml100k")
    >>> result.best_epoch, result.valid_metrics["ndcg@10"]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import numpy as np
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig, TrainConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.splits import Split
from tfrec_llm.data.tfdata import make_dataset, training_examples
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.callbacks import FullRankingValidation

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        model: The model, holding the best VALID weights (or the last ones without validation).
        best_epoch: 0-based epoch of the best VALID score (-1 without validation).
        valid_metrics: VALID metrics of that epoch (empty without validation).
        epochs_run: Epochs trained in total, including those before a resume.
        epochs_this_run: Epochs trained by this call (fewer than ``epochs_run`` after a resume).
        seconds: Wall time of this call.
    """

    model: TwoTowerModel
    best_epoch: int
    valid_metrics: dict[str, float]
    epochs_run: int
    epochs_this_run: int
    seconds: float


def make_optimizer(cfg: TrainConfig) -> keras.optimizers.Optimizer:
    """The optimizer named in the config."""
    if cfg.optimizer == "adagrad":
        return keras.optimizers.Adagrad(cfg.learning_rate)
    return keras.optimizers.Adam(cfg.learning_rate)


def train_two_tower(
    cfg: ExperimentConfig,
    split: Split,
    catalog: Catalog,
    text_embeddings: np.ndarray | None,
    model_dir: str,
    *,
    fit_on: str = "train",
    epochs: int | None = None,
    validate: bool = True,
    verbose: int = 1,
    name: str = "TwoTower",
    text_tokens: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainResult:
    """Trains the two-tower model of ``cfg`` on ``split`` and returns the best VALID weights.

    Resumes from ``<model_dir>/backup`` if a previous run with the same directory was killed.

    Args:
        cfg: The experiment config (model + train sections are used).
        split: Protocol split; ``fit_on`` picks ``split.train`` or ``split.train_valid``.
        catalog: Integer tables built from ``split``.
        text_embeddings: [num_items, dim] item text embeddings, or None for a text-free model.
        model_dir: Checkpoints, logs and best weights.
        fit_on: ``train`` (early stopping on VALID) or ``train_valid`` (refit, no validation).
        epochs: Overrides ``cfg.train.epochs``.
        validate: Run the VALID evaluator each epoch (early stopping, best weights).
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        name: Model name in logs.
        text_tokens: (token_ids, attention_mask) of the item texts, [num_items, max_length]
            each; required when ``cfg.text.fine_tune_layers != 0`` and ``cfg.model.use_text``.

    Returns:
        TrainResult.
    """
    start = time.perf_counter()
    os.makedirs(model_dir, exist_ok=True)
    frame = split.train if fit_on == "train" else split.train_valid
    validate = validate and fit_on == "train"
    examples = training_examples(frame, catalog, cfg.model.history_length)
    dataset = make_dataset(examples, cfg.train.batch_size, cfg.train.shuffle_buffer, seed=cfg.train.seed)

    model = build_two_tower(cfg.model, catalog, text_embeddings, cfg.text, text_tokens)
    model.compile(optimizer=make_optimizer(cfg.train))

    callbacks: list[keras.callbacks.Callback] = []
    validation = None
    if validate:

        def evaluate_valid() -> dict[str, float]:
            scorer = TwoTowerScorer(model, catalog, name=name)
            return evaluate(scorer, split.valid, split.item_ids, ks=cfg.eval.ks)

        validation = FullRankingValidation(evaluate_valid, model_dir, cfg.train.monitor, cfg.train.patience)
        if os.path.isdir(os.path.join(model_dir, "backup")):
            validation.load_history()
        callbacks.append(validation)
    callbacks += [
        keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup")),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), write_graph=False, profile_batch=0),
    ]
    history = model.fit(dataset, epochs=epochs or cfg.train.epochs, callbacks=callbacks, verbose=verbose)

    best_epoch, valid_metrics = -1, {}
    if validation is not None and validation.best is not None:
        model.load_weights(validation.weights_path)
        best_epoch = int(validation.best["epoch"])
        valid_metrics = dict(validation.best["metrics"])
        epochs_run = int(validation.history[-1]["epoch"]) + 1
    else:
        epochs_run = len(history.epoch)
    return TrainResult(model, best_epoch, valid_metrics, epochs_run, len(history.epoch), time.perf_counter() - start)
