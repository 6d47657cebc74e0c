"""The ``ranking`` run folder: the second-stage model of one protocol, trained once, then loaded.

``<train.model_dir>/<protocol>/ranking/`` holds, like a retrieval run (`experiments.runs`),
``model.weights.h5``, ``result.json``, ``fingerprint.json`` and ``config.yaml``, plus the
ranking trainer's ``backup/`` (resume), ``logs/`` and ``validation.json``. The model is
trained on TRAIN with the examples of ``ranking.objective`` (histories read from TRAIN), early
stopped on the VALID targets' examples; with ``ranking.examples=valid_lists`` it is trained on
the first stage's top N for the TRAIN histories with the VALID targets as positives
(`tfrec_llm.training.serving_lists`), early-stopped on a held-out part of those users. Read-only commands pass ``if_missing="error"``: a
missing run is then a `MissingRunError` naming ``tfrec-llm train --variant ranking``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from tfrec_llm.atomic_io import atomic_path, write_json
from tfrec_llm.config import ExperimentConfig
from tfrec_llm.data.schema import ITEM_ID, TIMESTAMP, USER_ID
from tfrec_llm.errors import ConfigError
from tfrec_llm.experiments.prepare import Prepared
from tfrec_llm.experiments.runs import (
    RESULT,
    WEIGHTS,
    StaleRunError,
    _missing_error,
    _read_json,
    run_dir,
    run_status,
    seed_everything,
)
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.retrieval import TwoTowerModel

RANKING_VARIANT = "ranking"
"""The run folder name (and ``tfrec-llm train --variant``) of the ranking model."""


def _valid_rows(prepared: Prepared) -> pd.DataFrame:
    """The VALID targets as interaction rows: ``train_valid`` minus ``train``."""
    split = prepared.split
    keys = [USER_ID, ITEM_ID, TIMESTAMP]
    merged = split.train_valid.merge(split.train[keys].drop_duplicates(), on=keys, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge")


def _ranking_fingerprint(cfg: ExperimentConfig, prepared: Prepared, variant: str) -> dict[str, Any]:
    from tfrec_llm.experiments.fingerprint import data_fingerprint

    first_stage = {"first_stage": variant} if cfg.ranking.examples == "valid_lists" else {}
    return {**first_stage, **_config_sections(cfg), "data": data_fingerprint(prepared)}


def _config_sections(cfg: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """The config sections a ranking model depends on, as plain dicts."""
    return {
        "model": dataclasses.asdict(cfg.model),
        "ranking": dataclasses.asdict(cfg.ranking),
        "train": {
            k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in ("model_dir", "strategy")
        },
        "text": dataclasses.asdict(cfg.text),
    }


def _with_defaults(old: dict[str, Any]) -> dict[str, Any]:
    """A recorded fingerprint whose sections gain the fields added since, at their defaults.

    A new field's default keeps the old behaviour, so the run was trained as that default;
    the same field set to anything else then reads as a change.
    """
    defaults = json.loads(json.dumps(_config_sections(ExperimentConfig())))
    return {
        **old,
        **{key: {**fields, **old[key]} for key, fields in defaults.items() if isinstance(old.get(key), dict)},
    }


def _same(old: Any, new: Any) -> bool:
    """Equal, where fields added to a section after the run was recorded are not compared."""
    if isinstance(old, dict) and isinstance(new, dict):
        return all(key in new and _same(value, new[key]) for key, value in old.items())
    return bool(old == new)


def load_or_train_ranking(
    cfg: ExperimentConfig,
    prepared: Prepared,
    directory: str | None = None,
    *,
    if_missing: str = "train",
    verbose: int = 1,
    variant: str = "bert",
    retrieval_model: TwoTowerModel | None = None,
) -> tuple[RankingModel, dict[str, Any]]:
    """The finished ranking model of ``prepared``'s protocol, trained first if needed.

    Args:
        cfg: Experiment config (model, ranking and train sections).
        prepared: The data, split for the protocol.
        directory: The run folder; default ``run_dir(cfg, protocol, "ranking")``.
        if_missing: ``train`` (resuming a killed run) or ``error`` (`MissingRunError`).
        verbose: Keras progress output.
        variant: ``ranking.examples=valid_lists``: the first stage whose top N the lists are
            (its finished run, trained first unless ``if_missing="error"``).
        retrieval_model: That first stage, when the caller has it loaded already.

    Returns:
        (model, info) with best_epoch, valid_metrics, epochs_run, train_seconds.

    Raises:
        MissingRunError: With ``if_missing="error"`` and no finished run in the folder.
        StaleRunError: A finished run made with other settings or data (kept as it is).
    """
    from tfrec_llm.training.ranking_trainer import (
        build_ranking_model,
        evaluate_ranking,
        ranking_examples,
        train_ranking,
    )

    protocol = prepared.split.protocol
    directory = directory or run_dir(cfg, protocol, RANKING_VARIANT)
    weights, info_path = os.path.join(directory, WEIGHTS), os.path.join(directory, RESULT)
    text = prepared.text_embeddings
    train = prepared.split.train
    bias = float(train["rating"].mean()) if cfg.ranking.objective == "rating" and "rating" in train else 0.0
    seed_everything(cfg)

    item_item: tuple[Any, ...] | None = None  # (B, w[, known]) once fitted, before training

    def build() -> RankingModel:
        model = build_ranking_model(cfg, prepared.catalog, text, output_bias=bias)
        if item_item is not None:
            model.set_item_item(*item_item)  # type: ignore[union-attr]
        return model  # type: ignore[return-value]

    fingerprint = json.loads(json.dumps(_ranking_fingerprint(cfg, prepared, variant)))
    if run_status(directory) == "finished":
        stored = os.path.join(directory, "fingerprint.json")
        old = _with_defaults(_read_json(stored)) if os.path.exists(stored) else fingerprint
        changed = sorted(key for key in fingerprint if not _same(old.get(key), fingerprint[key]))
        if changed:
            raise StaleRunError(
                f"{directory} holds a ranking model trained with other {', '.join(changed)} settings "
                "or data; it is kept as it is: move it aside (or use another train.model_dir) and "
                "train again with 'tfrec-llm train --variant ranking'."
            )
        model = build()
        model.load_weights(weights)
        return model, _read_json(info_path)
    if if_missing == "error":
        raise _missing_error([(directory, protocol, RANKING_VARIANT, run_status(directory))], "this command")
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, "fingerprint.json"), fingerprint)
    catalog = prepared.catalog
    fitted: dict[str, Any] = {}
    if cfg.ranking.examples == "valid_lists":
        examples, valid = _serving_examples(cfg, prepared, variant, retrieval_model, if_missing, verbose)
        if cfg.ranking.item_item_l2 > 0:
            item_item, fitted = _fit_item_item(cfg, prepared, examples, valid)
    else:
        examples = ranking_examples(cfg, train, catalog, history=train)
        valid = ranking_examples(
            cfg, _valid_rows(prepared), catalog, history=train, known=prepared.split.train_valid
        )
    result = train_ranking(cfg, examples, valid, build, directory, verbose=verbose)
    info = {
        "variant": RANKING_VARIANT,
        "objective": cfg.ranking.objective,
        "best_epoch": result.best_epoch,
        "valid_metrics": result.valid_metrics,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.seconds, 2),
        **fitted,
    }
    if cfg.ranking.residual:
        info["kept_retrieval_order"] = _no_worse_than_retrieval(result.model, build(), valid)
        if info["kept_retrieval_order"]:
            info["valid_metrics"] = evaluate_ranking(result.model, valid)
    with atomic_path(weights) as tmp:
        result.model.save_weights(tmp)
    write_json(info_path, info)
    return result.model, info  # type: ignore[return-value]


def _no_worse_than_retrieval(model: RankingModel, untrained: RankingModel, held_out: dict[str, Any]) -> bool:
    """Sets ``model``'s residual to zero (the retrieval order) unless training beat that on ``held_out``.

    The untrained residual ranker's last layer is zero, so it ranks exactly as retrieval does;
    if the trained one's held-out loss is not lower, its last layer is zeroed as well.

    Returns:
        Whether the retrieval order was kept.
    """
    from tfrec_llm.training.ranking_trainer import evaluate_ranking

    untrained.compile()  # evaluate only: no optimizer
    start = evaluate_ranking(untrained, held_out)["loss"]
    if evaluate_ranking(model, held_out)["loss"] < start:
        return False
    layer = model.output_layer
    layer.kernel.assign(tf.zeros_like(layer.kernel))
    layer.bias.assign(tf.zeros_like(layer.bias))
    return True


def _serving_examples(
    cfg: ExperimentConfig,
    prepared: Prepared,
    variant: str,
    retrieval_model: TwoTowerModel | None,
    if_missing: str,
    verbose: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fit, held out) ``serving_lists`` of the VALID task under the first stage ``variant``."""
    from tfrec_llm.experiments.runs import load_or_train
    from tfrec_llm.models.scorer import TwoTowerScorer
    from tfrec_llm.training.serving_lists import serving_lists, split_lists

    if retrieval_model is None:
        retrieval_model, _ = load_or_train(cfg, prepared, variant, if_missing=if_missing, verbose=verbose)
    scorer = TwoTowerScorer(retrieval_model, prepared.catalog)
    lists = serving_lists(
        scorer, prepared.catalog, prepared.split.valid, cfg.model.history_length, cfg.ranking.num_candidates
    )
    return split_lists(lists, cfg.ranking.holdout, cfg.train.seed)


def _fit_item_item(
    cfg: ExperimentConfig, prepared: Prepared, fit: dict[str, Any], held_out: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(B, w[, known]) of ``ranking.item_item_l2``: EASE on TRAIN, ``w`` on the fit lists; the record.

    With ``ranking.cold_item_neighbours`` the items without TRAIN interactions take their rows
    and columns from their text neighbours, and their retrieval term is dropped in the fit as
    in the model (``known``; ``f`` is 0 while ``w`` is fitted).
    """
    from tfrec_llm.models.item_item import ease_weights, interaction_matrix
    from tfrec_llm.training.item_item_fit import fit_item_item_weight, list_item_item_scores, listwise_loss

    catalog, train = prepared.catalog, prepared.split.train
    users = catalog.user_index(train[USER_ID].to_numpy(dtype=object))
    items = catalog.item_index(train[ITEM_ID].to_numpy(dtype=object))
    matrix = interaction_matrix(users, items, catalog.num_users, catalog.num_items)
    table = ease_weights(matrix, cfg.ranking.item_item_l2)
    known = None
    if cfg.ranking.cold_item_neighbours:
        table, known, fit, held_out = _transfer_to_new_items(cfg, prepared, matrix, table, fit, held_out)
    weight, loss, loss_without = fit_item_item_weight(fit, table, cfg.model.temperature)
    base = np.asarray(held_out["retrieval_score"], np.float64) / cfg.model.temperature
    feature = list_item_item_scores(table, held_out["history"], held_out["item"])
    labels = np.asarray(held_out["label"], np.float64)
    record = {
        "item_item_weight": round(weight, 6),
        "item_item_fit_loss": [round(loss_without, 6), round(loss, 6)],
        "item_item_held_out_loss": [
            round(listwise_loss(base, feature, labels, 0.0), 6),
            round(listwise_loss(base, feature, labels, weight), 6),
        ],
        **({"cold_items_transferred": int((~known).sum())} if known is not None else {}),
    }
    return ((table, weight) if known is None else (table, weight, known)), record


def _transfer_to_new_items(
    cfg: ExperimentConfig, prepared: Prepared, matrix: Any, table: np.ndarray, *lists: dict[str, Any]
) -> tuple[Any, ...]:
    """(table with new items' rows/columns from text neighbours, known mask, lists without their
    new items' retrieval scores)."""
    from tfrec_llm.models.cold_transfer import transfer_item_item

    if prepared.text_embeddings is None:
        raise ConfigError(
            "ranking.cold_item_neighbours > 0 finds new items' neighbours by their frozen text "
            "vectors; this run has none (model.use_text=false, or text.fine_tune_layers != 0). Set "
            "ranking.cold_item_neighbours=0."
        )
    known = np.asarray(matrix.sum(axis=0)).ravel() > 0
    k, power = cfg.ranking.cold_item_neighbours, cfg.ranking.cold_item_power
    table = transfer_item_item(table, prepared.text_embeddings, known, k, power)
    masked = [
        {**lst, "retrieval_score": np.asarray(lst["retrieval_score"]) * known[np.maximum(lst["item"], 0)]}
        for lst in lists
    ]
    return (table, known, *masked)


def ranking_trained(cfg: ExperimentConfig, protocol: str = "loo") -> bool:
    """Whether ``<train.model_dir>/<protocol>/ranking`` holds a finished ranking model."""
    return run_status(run_dir(cfg, protocol, RANKING_VARIANT)) == "finished"


def export_two_stage(
    cfg: ExperimentConfig,
    prepared: Prepared,
    variant: str,
    export_dir: str | None = None,
    version: int | None = None,
    verbose: int = 1,
    if_missing: str = "train",
) -> str:
    """Publishes the ``ranking`` SavedModel (two-stage ``recommend``) and lists it in models.config.

    The first stage is the finished run of ``variant``, the second the ``ranking`` run (both
    under ``prepared``'s protocol, trained first unless ``if_missing="error"``). models.config
    is rewritten with every model folder of ``export_dir`` (retrieval, item_encoder, ranking).

    Returns:
        The published version folder.
    """
    from tfrec_llm.experiments.prepare import known_histories
    from tfrec_llm.experiments.runs import load_or_train
    from tfrec_llm.export.models_config import write_models_config
    from tfrec_llm.export.ranking_export import RANKING, export_ranking

    export_dir = export_dir or cfg.export.export_dir
    model, _ = load_or_train(cfg, prepared, variant, if_missing=if_missing, verbose=verbose)
    ranking, _ = load_or_train_ranking(
        cfg, prepared, if_missing=if_missing, verbose=verbose, variant=variant, retrieval_model=model
    )
    folder = export_ranking(
        cfg, model, ranking, prepared.catalog, known_histories(prepared), export_dir, version
    )
    names = [n for n in ("retrieval", "item_encoder") if os.path.isdir(os.path.join(export_dir, n))]
    write_models_config(export_dir, [*names, RANKING])
    return folder
