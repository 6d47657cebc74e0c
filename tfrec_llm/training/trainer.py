"""Compile, fit with full-ranking early stopping, checkpoint, resume.

Layout of ``model_dir``::

    backup/               BackupAndRestore checkpoint of the epoch in progress (resume after a kill)
    logs/                 TensorBoard (loss per epoch, valid/<metric>@<k>)
    validation.json       VALID metrics of every epoch
    best.weights.h5       weights of the best VALID epoch

Under ``train.strategy`` (`tfrec_llm.training.distribute`, docs/scaling.md) the model is built
and compiled inside ``strategy.scope()`` and Keras ``fit`` splits each batch across the
replicas. With ``multi_worker`` every worker runs this function with the same arguments and the
same ``model_dir`` (a shared file system); only the chief writes the files above, the other
workers write theirs under ``model_dir/.<task>`` (removed when the run succeeds), and
``BackupAndRestore`` keeps one backup for the cluster.

The trainer knows nothing of how a model is built or scored: it takes a model factory (called
after the input pipeline is built, so the random streams are the same whatever the caller did)
and, for early stopping, a validation metric as a callable.

Example:
    >>> result = train_two_tower(
    ...     cfg, split, catalog, lambda: build_two_tower(cfg.model, catalog, text), "runs/ml100k",
    ...     validation_metric=lambda model: {"ndcg@10": ...},
    ... )
    >>> result.best_epoch, result.valid_metrics["ndcg@10"]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig, TrainConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.splits import Split
from tfrec_llm.data.tfdata import make_dataset, next_item_windows, training_examples
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.training.callbacks import FullRankingValidation, fit_with_validation
from tfrec_llm.training.distribute import is_chief, make_strategy, task_name

logger = logging.getLogger(__name__)

ModelFactory = Callable[[], TwoTowerModel]
"""Builds a fresh model with its lookup tables loaded and its weights created."""

ValidationMetric = Callable[[TwoTowerModel], dict[str, float]]
"""Scores the model on VALID; returns ``{"<metric>@<k>": value, ...}`` (``train.monitor`` among them)."""


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
    build_model: ModelFactory,
    model_dir: str,
    *,
    validation_metric: ValidationMetric | None = None,
    fit_on: str = "train",
    epochs: int | None = None,
    verbose: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    dataset: tf.data.Dataset | None = None,
) -> TrainResult:
    """Trains the two-tower model of ``cfg`` on ``split`` and returns the best VALID weights.

    Resumes from ``<model_dir>/backup`` if a previous run with the same directory was killed.

    Args:
        cfg: The experiment config (the model's history length and the train section).
        split: Protocol split; ``fit_on`` picks ``split.train`` or ``split.train_valid``.
        catalog: Integer tables built from ``split``.
        build_model: Returns the untrained model (called once, after the input pipeline).
        model_dir: Checkpoints, logs and best weights.
        validation_metric: Scores the model on VALID after each epoch (early stopping on
            ``cfg.train.monitor``, best weights); None trains without validation.
        fit_on: ``train`` (early stopping on VALID) or ``train_valid`` (refit, no validation).
        epochs: Overrides ``cfg.train.epochs``.
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        callbacks: More Keras callbacks; they run after the trainer's own (validation,
            ``BackupAndRestore``, TensorBoard), so at their ``on_epoch_end`` the epoch is
            already checkpointed.
        dataset: Batched training examples to fit on instead of building them in memory from
            ``split`` (e.g. streamed from TFRecord shards); same element structure as
            ``make_dataset``. ``split`` still supplies the trained items for the softmax.

    Returns:
        TrainResult.
    """
    start = time.perf_counter()
    os.makedirs(model_dir, exist_ok=True)
    frame = split.train if fit_on == "train" else split.train_valid
    if dataset is None:
        make_examples = next_item_windows if cfg.model.objective == "next_item" else training_examples
        examples = make_examples(frame, catalog, cfg.model.history_length)
        dataset = make_dataset(examples, cfg.train.batch_size, cfg.train.shuffle_buffer, seed=cfg.train.seed)
        # In-memory examples have no files to shard: each worker takes its share of elements.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)

    strategy = make_strategy(cfg.train.strategy)
    chief = is_chief(strategy)
    # Non-chief workers validate too (every worker must stop at the same epoch) but write aside.
    write_dir = model_dir if chief else os.path.join(model_dir, f".{task_name(strategy)}")
    with strategy.scope():
        model = build_model()
        trained_items = np.unique(catalog.item_index(frame["item_id"].to_numpy()))
        model.restrict_softmax(trained_items[trained_items >= 0])
        model.compile(optimizer=make_optimizer(cfg.train))

    validation = None
    if validation_metric is not None and fit_on == "train":
        metric = validation_metric
        validation = FullRankingValidation(
            lambda: metric(model), write_dir, cfg.train.monitor, cfg.train.patience
        )
    best_epoch, valid_metrics, epochs_run, epochs_this_run = fit_with_validation(
        model,
        dataset,
        model_dir=model_dir,
        log_dir=os.path.join(write_dir, "logs"),
        validation=validation,
        epochs=epochs or cfg.train.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return TrainResult(
        model, best_epoch, valid_metrics, epochs_run, epochs_this_run, time.perf_counter() - start
    )
