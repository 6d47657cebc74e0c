"""Builds and trains the ranking model (or the multitask model): early stopping on VALID, resume.

Layout of ``model_dir`` (as ``trainer.train_two_tower``'s)::

    backup/               BackupAndRestore checkpoint of the epoch in progress (resume after a kill)
    logs/                 TensorBoard (loss and metrics per epoch, valid/<metric>)
    validation.json       VALID metrics of every epoch
    best.weights.h5       weights of the best VALID epoch

The VALID metric depends on the objective (``VALID_MONITORS``): ``neg_rmse`` (minus the RMSE,
so that higher is better) for ``rating``, ``auc`` for ``ctr``, ``top1_accuracy`` for
``listwise``; with ``ranking.examples=valid_lists`` it is ``neg_loss`` on the held-out lists.

Example:
    >>> data = ranking_examples(cfg, train_frame, catalog, history=train_frame)
    >>> result = train_ranking(cfg, data, valid_data,
    ...                        lambda: build_ranking_model(cfg, catalog, text), "runs/ranking")
    >>> result.valid_metrics["rmse"]
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.config import ExperimentConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.data.ranking_examples import click_examples, list_examples, rating_examples
from tfrec_llm.data.tfdata import make_dataset
from tfrec_llm.models.multitask import MultitaskModel
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.training.callbacks import FullRankingValidation, fit_with_validation
from tfrec_llm.training.trainer import make_optimizer

VALID_MONITORS = {"rating": "neg_rmse", "ctr": "auc", "listwise": "top1_accuracy"}
"""The VALID metric each objective stops on (higher is better)."""

LISTS_MONITOR = "neg_loss"
"""What ``ranking.examples=valid_lists`` stops on: minus the held-out lists' softmax loss (the
top-1 accuracy of a few hundred lists of 100 is too coarse to stop on)."""


def valid_monitor(cfg: ExperimentConfig) -> str:
    """The VALID metric the ranking run of ``cfg`` stops on (higher is better)."""
    return LISTS_MONITOR if cfg.ranking.examples == "valid_lists" else VALID_MONITORS[cfg.ranking.objective]


def _history_encoder(cfg: ExperimentConfig) -> dict[str, Any]:
    """The query tower's history-encoder argument for the model section (none = mean pooling)."""
    model = cfg.model
    if model.history_encoder == "mean":
        return {}
    if model.history_encoder == "cnn":
        return {"history_encoder": {"name": "cnn", "filters": model.encoder_width}}
    if model.history_encoder in ("gru", "lstm"):
        encoder = {
            "name": model.history_encoder,
            "units": model.encoder_width,
            "dropout": model.encoder_dropout,
        }
        return {"history_encoder": encoder}
    encoder = {
        "name": model.history_encoder,
        "max_length": model.history_length,
        "num_blocks": model.encoder_blocks,
        "num_heads": model.encoder_heads,
        "width": model.encoder_width,
        "dropout": model.encoder_dropout,
    }
    return {"history_encoder": encoder}


def ranking_model_config(
    cfg: ExperimentConfig, catalog: Catalog, text_dim: int, output_bias: float = 0.0
) -> dict[str, Any]:
    """The ``RankingModel`` constructor arguments of ``cfg`` (model + ranking sections).

    The towers follow the model section (ids, text, categories, profile, history encoder),
    except that the ranking model always uses the user id (with its OOV row) when
    ``model.use_ids``, and keeps the towers' raw (unnormalised) vectors.
    """
    model, ranking = cfg.model, cfg.ranking
    return {
        "item_tower": {
            "num_items": catalog.num_items,
            "item_vocab_size": catalog.item_vocab_size,
            "text_dim": text_dim if model.use_text else 0,
            "num_categories": int(catalog.categories.shape[1]),
            "embedding_dim": model.embedding_dim,
            "use_ids": model.use_ids,
            "use_text": model.use_text,
            "use_categories": model.use_categories,
            "text_projection_dim": model.text_projection_dim,
            "l2": model.l2,
            "id_dropout": model.id_dropout,
            "normalize": False,
        },
        "query_tower": {
            "num_users": catalog.num_users,
            "user_vocab_size": catalog.user_vocab_size,
            "profile_sizes": list(catalog.profile_sizes),
            "embedding_dim": model.embedding_dim,
            "use_ids": model.use_ids,
            "use_profile": model.use_profile,
            "use_history": model.use_history,
            "l2": model.l2,
            "normalize": False,
            **_history_encoder(cfg),
        },
        "cross": {
            "cross_layers": ranking.cross_layers,
            "structure": ranking.cross_structure,
            "projection_dim": ranking.projection_dim,
            "deep_layers": list(ranking.deep_layers),
            "dropout": ranking.dropout,
        },
        "objective": ranking.objective,
        "use_retrieval_score": ranking.use_retrieval_score,
        "output_bias": output_bias,
        "residual_temperature": model.temperature if ranking.residual else 0.0,
        "item_item": ranking.item_item_l2 > 0,
        **({"cold_item_transfer": True} if ranking.cold_item_neighbours > 0 else {}),
    }


def build_ranking_model(
    cfg: ExperimentConfig,
    catalog: Catalog,
    text_embeddings: np.ndarray | None = None,
    *,
    output_bias: float = 0.0,
    multitask: bool = False,
) -> RankingModel | MultitaskModel:
    """The ranking model of ``cfg`` (or the multitask model around it), tables loaded, weights built.

    Args:
        cfg: The experiment config (model and ranking sections; ``model.temperature`` and
            ``model.remove_accidental_hits`` for the multitask retrieval task).
        catalog: Integer tables (``build_catalog``).
        text_embeddings: [num_items, text_dim] precomputed item text embeddings (with
            ``model.use_text``).
        output_bias: Initial output bias (the mean TRAIN rating for ``rating``).
        multitask: Build a ``MultitaskModel`` (loss weights from the ranking section).
    """
    text_dim = int(text_embeddings.shape[1]) if text_embeddings is not None and cfg.model.use_text else 0
    config = ranking_model_config(cfg, catalog, text_dim, output_bias)
    model: RankingModel | MultitaskModel
    if multitask:
        model = MultitaskModel(
            ranking=config,
            retrieval_weight=cfg.ranking.retrieval_weight,
            ranking_weight=cfg.ranking.ranking_weight,
            temperature=cfg.model.temperature,
            remove_accidental_hits=cfg.model.remove_accidental_hits,
        )
        ranking = model.ranking
    else:
        model = ranking = RankingModel(**config)
    text_table = text_embeddings if cfg.model.use_text else None
    ranking.item_tower.set_tables(catalog.item_id_index, text_table, catalog.categories)
    ranking.query_tower.set_tables(catalog.user_id_index, catalog.profile)
    width = cfg.ranking.list_size if cfg.ranking.objective == "listwise" else None
    probe = {
        "user": tf.zeros([1], tf.int32),
        "history": -tf.ones([1, cfg.model.history_length], tf.int32),
        "item": tf.zeros([1] if width is None else [1, width], tf.int32),
        "retrieval_score": tf.zeros([1] if width is None else [1, width]),
    }
    model(probe)
    return model


def ranking_examples(
    cfg: ExperimentConfig,
    frame: pd.DataFrame,
    catalog: Catalog,
    history: pd.DataFrame,
    *,
    seed: int | None = None,
    known: pd.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """The examples of ``cfg.ranking.objective`` for the rows of ``frame``.

    ``history`` gives each row's earlier items; ``known`` the interactions negatives must avoid
    (ctr, listwise; default ``frame`` + ``history``); ``seed`` (default ``train.seed``) draws them.
    """
    seed = cfg.train.seed if seed is None else seed
    length = cfg.model.history_length
    objective = cfg.ranking.objective
    if objective == "rating":
        return rating_examples(frame, catalog, length, history)
    if objective == "ctr":
        return click_examples(
            frame, catalog, length, history, negatives=cfg.ranking.negatives, seed=seed, known=known
        )
    return list_examples(
        frame, catalog, length, history, list_size=cfg.ranking.list_size, seed=seed, known=known
    )


def evaluate_ranking(
    model: RankingModel | MultitaskModel, examples: dict[str, np.ndarray], batch_size: int = 1024
) -> dict[str, float]:
    """The model's loss and task metrics on ``examples`` (``neg_rmse`` added beside ``rmse``)."""
    dataset = make_dataset(examples, batch_size, shuffle=False)
    metrics = {
        key: float(value) for key, value in model.evaluate(dataset, verbose=0, return_dict=True).items()
    }
    if "rmse" in metrics:
        metrics["neg_rmse"] = -metrics["rmse"]
    if "loss" in metrics:
        metrics[LISTS_MONITOR] = -metrics["loss"]
    return metrics


@dataclasses.dataclass
class RankingTrainResult:
    """What a ranking training run produced (see ``trainer.TrainResult``)."""

    model: RankingModel | MultitaskModel
    best_epoch: int
    valid_metrics: dict[str, float]
    epochs_run: int
    epochs_this_run: int
    seconds: float


def train_ranking(
    cfg: ExperimentConfig,
    train_examples: dict[str, np.ndarray],
    valid_examples: dict[str, np.ndarray] | None,
    build_model: Callable[[], RankingModel | MultitaskModel],
    model_dir: str,
    *,
    epochs: int | None = None,
    verbose: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> RankingTrainResult:
    """Fits the ranking (or multitask) model on ``train_examples``; best VALID weights kept.

    Resumes from ``<model_dir>/backup`` if a previous run with the same folder was killed.

    Args:
        cfg: The experiment config (train section: batch size, optimizer, epochs, patience, seed).
        train_examples: ``ranking_examples`` of TRAIN.
        valid_examples: ``ranking_examples`` of VALID, or the held-out ``serving_lists``
            (early stopping on ``valid_monitor(cfg)``); None trains ``epochs`` without validation.
        build_model: Returns the untrained model (called after the input pipeline is built).
        model_dir: Checkpoints, logs and best weights.
        epochs: Overrides ``cfg.train.epochs``.
        verbose: Keras progress output.
        callbacks: More Keras callbacks, run after the trainer's own.
    """
    start = time.perf_counter()
    os.makedirs(model_dir, exist_ok=True)
    train = cfg.train
    dataset = make_dataset(train_examples, train.batch_size, train.shuffle_buffer, seed=train.seed)
    model = build_model()
    model.compile(optimizer=make_optimizer(train))
    validation = None
    if valid_examples is not None:
        monitor = valid_monitor(cfg)
        validation = FullRankingValidation(
            lambda: evaluate_ranking(model, valid_examples), model_dir, monitor, train.patience
        )
    best_epoch, valid_metrics, epochs_run, epochs_this_run = fit_with_validation(
        model,
        dataset,
        model_dir=model_dir,
        log_dir=os.path.join(model_dir, "logs"),
        validation=validation,
        epochs=epochs or train.epochs,
        callbacks=callbacks,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    return RankingTrainResult(model, best_epoch, valid_metrics, epochs_run, epochs_this_run, seconds)
