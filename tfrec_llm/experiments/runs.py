"""Runs: one folder per trained model, seeded, reused only when nothing it depends on changed.

Layout of a run folder (default ``<train.model_dir>/<protocol>/<variant>``)::

    training_config.json  what decides the model: the data/text/model/train config sections and
                          a hash of the parsed input data
    data_files.json       size, mtime and SHA-256 of each input file (to name what changed)
    config.yaml           the full config of the run (``tfrec-llm train --config`` accepts it)
    model.weights.h5      the finished model (best VALID epoch, or the refit)
    result.json           best_epoch, valid_metrics, epochs_run, train_seconds
    backup/ logs/ ...     the trainer's checkpoints and TensorBoard logs (``training.trainer``)

A folder with ``model.weights.h5`` and ``result.json`` is finished and is reused; a folder
without them (nothing yet, or a killed run) trains, resuming from ``backup/``, unless the caller
only reads models (``if_missing="error"``: ``tfrec-llm evaluate``, ``export``, ``recommend``):
then `MissingRunError` names the folders and the ``tfrec-llm train`` commands that make them
(`require_trained` checks before any data is read). A folder trained
with other settings or other data is never reused and never deleted silently: `load_or_train`
raises `StaleRunError`, which names the differences (changed settings, changed input files: see
``experiments.fingerprint``) and the two ways out (``train --retrain``, which moves the old run
aside to ``<run>.bak-<time>``, or another ``--model-dir``). Weights that do not fit the model
of the current settings are a `StaleRunError` too, never a shape traceback.

Example:
    >>> prepared = prepare(cfg, "loo")
    >>> model, info = load_or_train(cfg, prepared, "bert")
    >>> info["best_epoch"], info["valid_metrics"]["ndcg@10"]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from typing import Any

import tf_keras as keras

from tfrec_llm.atomic_io import atomic_path, write_json
from tfrec_llm.config import DataConfig, ExperimentConfig, dump_config, replace
from tfrec_llm.config.choices import PROTOCOLS, REPORT_VARIANTS, VARIANT_NAMES, VARIANTS
from tfrec_llm.errors import ConfigError
from tfrec_llm.evaluation.protocols import evaluate
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.experiments.fingerprint import (
    data_fingerprint,
    file_fingerprints,
    stale_reasons,
    training_fingerprint,
    with_new_fields,
)
from tfrec_llm.experiments.prepare import Prepared, streamed_examples
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.models.scorer import TwoTowerScorer
from tfrec_llm.training.trainer import TrainResult, ValidationMetric, train_two_tower

logger = logging.getLogger(__name__)

WEIGHTS = "model.weights.h5"
RESULT = "result.json"
FINGERPRINT = "training_config.json"
CONFIG = "config.yaml"
DATA_FILES = "data_files.json"
WAYS_OUT = (
    "Train it again with `tfrec-llm train --retrain` (the old run is moved aside to "
    "<run>.bak-<time>, not deleted), or choose another --model-dir."
)

__all__ = [
    "MissingRunError",
    "StaleRunError",
    "build_model",
    "data_fingerprint",
    "load_or_train",
    "move_aside",
    "require_trained",
    "run_dir",
    "run_status",
    "training_fingerprint",
    "variant_config",
]

_IF_STALE = ("error", "retrain")
_IF_MISSING = ("train", "error")


class StaleRunError(ConfigError):
    """A run folder holds a model trained with other settings or other data."""


class MissingRunError(ConfigError):
    """A command that only reads models needs one that is not trained (or not finished) yet."""


def run_dir(cfg: ExperimentConfig, protocol: str, variant: str) -> str:
    """The folder of one model: ``<train.model_dir>/<protocol>/<variant>``."""
    return os.path.join(cfg.train.model_dir, protocol, variant)


def run_status(directory: str) -> str:
    """``finished`` (weights and result), ``unfinished`` (a checkpoint in ``backup/``) or ``missing``."""
    if all(os.path.exists(os.path.join(directory, name)) for name in (WEIGHTS, RESULT)):
        return "finished"
    backups = (os.path.join(directory, "backup"), os.path.join(directory, "refit", "backup"))
    return "unfinished" if any(os.path.isdir(b) and os.listdir(b) for b in backups) else "missing"


def _missing_error(runs: list[tuple[str, str, str, str]], reader: str) -> MissingRunError:
    """The error naming runs ``(directory, protocol, variant, status)`` that are not finished."""
    clauses, commands = [], []
    for status, head, verb in (
        ("missing", "no trained model in", "train"),
        ("unfinished", "an unfinished run (killed during training: backup/ but no model) in", "resume"),
    ):
        chosen = [run for run in runs if run[3] == status]
        if chosen:
            clauses.append(f"{head} {', '.join(run[0] for run in chosen)}")
            cmds = [f"'tfrec-llm train --variant {v} --protocol {p}'" for _, p, v, _ in chosen]
            commands.append(f"{verb} {'it' if len(cmds) == 1 else 'them'} first with {', '.join(cmds)}")
    protocols = sorted({run[1] for run in runs}, key=PROTOCOLS.index)
    extra = "" if set(protocols) <= {"loo", "cold-items"} else " --protocol " + ",".join(protocols)
    way_two = f", or use 'tfrec-llm run{extra}', which trains, evaluates and exports"
    if not all(run[2] in REPORT_VARIANTS for run in runs):
        way_two = ""  # `run` trains the REPORT_VARIANTS only
    return MissingRunError(
        f"{'; '.join(clauses)}: {reader} does not train, so {' and '.join(commands)} (same --config, "
        f"--set and --model-dir){way_two}."
    )


def require_trained(
    cfg: ExperimentConfig, needed: Iterable[tuple[str, str]], reader: str = "this command"
) -> None:
    """Raises `MissingRunError` unless every ``(protocol, variant)`` run of ``cfg`` is finished.

    Only the run folders are looked at (no data is read), so a read-only command calls it
    before any work. Whether a finished run fits the current settings and data is checked
    later, by `load_or_train`.

    Args:
        cfg: Experiment config (``train.model_dir``).
        needed: The (protocol, variant) pairs the command needs.
        reader: The command, for the message (``evaluate``, ``export``, ...).

    Raises:
        MissingRunError: Naming every missing or unfinished run folder, with the ways out.
    """
    runs = [(run_dir(cfg, p, v), p, v) for p, v in dict.fromkeys(needed)]
    absent = [(d, p, v, run_status(d)) for d, p, v in runs]
    absent = [run for run in absent if run[3] != "finished"]
    if absent:
        raise _missing_error(absent, reader)


def seed_everything(cfg: ExperimentConfig) -> None:
    """Seeds Python, numpy and TensorFlow with ``train.seed``.

    Called right before each model is built, so a model's weights do not depend on what the
    process did before: ``tfrec-llm train --variant bert`` and ``tfrec-llm run`` train the very
    same model.
    """
    keras.utils.set_random_seed(cfg.train.seed)


def variant_config(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
    """``cfg`` with the overrides of ``variant`` (``tfrec_llm.config.choices.VARIANTS``).

    Raises:
        ConfigError: If ``variant`` is unknown.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r}; expected one of {sorted(VARIANTS)}")
    return replace(cfg, **{key.replace(".", "__"): value for key, value in VARIANTS[variant].items()})


def _text_inputs(
    vcfg: ExperimentConfig, prepared: Prepared, variant: str
) -> tuple[Any, tuple[Any, Any] | None]:
    """(text embeddings, text tokens) that the model of ``vcfg`` needs (None where unused)."""
    if not vcfg.model.use_text:
        return None, None
    if prepared.text_embeddings is None:
        raise ConfigError(f"variant {variant!r} needs text embeddings; call prepare(..., with_text=True)")
    if not vcfg.text.runs_bert:  # frozen BERT: the precomputed table
        return prepared.text_embeddings, None
    if prepared.text_tokens is None:
        raise ConfigError(
            f"variant {variant!r} with text.fine_tune_layers={vcfg.text.fine_tune_layers} needs "
            "the tokenized item texts; call prepare(...) with that config and with_text=True"
        )
    return prepared.text_embeddings, prepared.text_tokens


def build_model(cfg: ExperimentConfig, prepared: Prepared, variant: str) -> TwoTowerModel:
    """The untrained model of ``variant`` for ``prepared`` (tables loaded, weights created)."""
    vcfg = variant_config(cfg, variant)
    text, tokens = _text_inputs(vcfg, prepared, variant)
    return build_two_tower(vcfg.model, prepared.catalog, text, vcfg.text, tokens)


def validation_metric(cfg: ExperimentConfig, prepared: Prepared, name: str) -> ValidationMetric:
    """VALID metrics of a model under the full-ranking evaluator (``eval.ks``)."""

    def metric(model: TwoTowerModel) -> dict[str, float]:
        scorer = TwoTowerScorer(model, prepared.catalog, name=name)
        return evaluate(scorer, prepared.split.valid, prepared.split.item_ids, ks=cfg.eval.ks)

    return metric


def train_variant(
    cfg: ExperimentConfig, prepared: Prepared, variant: str, model_dir: str, verbose: int = 1
) -> TrainResult:
    """Trains one model variant on the prepared split (early stopping on VALID).

    With ``train.refit_on_train_valid`` the model is then retrained from scratch on
    TRAIN+VALID for the best number of epochs (in ``<model_dir>/refit``).
    """
    vcfg = variant_config(cfg, variant)
    _text_inputs(vcfg, prepared, variant)  # fail before any work when inputs are missing

    def build() -> TwoTowerModel:
        return build_model(cfg, prepared, variant)

    metric = validation_metric(vcfg, prepared, VARIANT_NAMES[variant])
    split, catalog = prepared.split, prepared.catalog
    streamed = streamed_examples(vcfg, prepared)  # None unless train.streaming
    result = train_two_tower(
        vcfg, split, catalog, build, model_dir, validation_metric=metric, verbose=verbose, dataset=streamed
    )
    if vcfg.train.refit_on_train_valid and result.best_epoch >= 0:
        refit = train_two_tower(
            vcfg,
            split,
            catalog,
            build,
            os.path.join(model_dir, "refit"),
            fit_on="train_valid",
            epochs=result.best_epoch + 1,
            verbose=verbose,
            dataset=streamed_examples(vcfg, prepared, "train_valid"),
        )
        result = dataclasses.replace(refit, best_epoch=result.best_epoch, valid_metrics=result.valid_metrics)
    return result


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_not_stale(directory: str, fingerprint: dict[str, Any], data: DataConfig | None = None) -> None:
    """Raises `StaleRunError` when ``directory`` holds a run made with another fingerprint.

    Args:
        directory: The run folder.
        fingerprint: The current `training_fingerprint`.
        data: The current data section; with it, a changed input file is named in the message.
    """
    marker = os.path.join(directory, FINGERPRINT)
    finished = os.path.exists(os.path.join(directory, WEIGHTS))
    if not os.path.exists(marker):
        if finished:
            raise StaleRunError(
                f"{directory} holds a model without {FINGERPRINT}, so its settings and data "
                f"cannot be checked. {WAYS_OUT}"
            )
        return
    old = with_new_fields(_read_json(marker))
    if old != fingerprint:
        files_path = os.path.join(directory, DATA_FILES)
        old_files = _read_json(files_path) if os.path.exists(files_path) else None
        new_files = file_fingerprints(data) if data is not None and old_files is not None else {}
        changes = stale_reasons(old, fingerprint, old_files, new_files)
        raise StaleRunError(
            f"{directory} holds a model trained with other settings or data "
            f"({'; '.join(changes[:6])}{' ...' if len(changes) > 6 else ''}). It is kept as it "
            f"is. {WAYS_OUT}"
        )


def move_aside(directory: str) -> str | None:
    """Renames a run folder to ``<directory>.bak-<YYYYmmdd-HHMMSS>`` (never deletes it).

    Returns:
        The new name, or None when ``directory`` does not exist or is empty.
    """
    if not os.path.isdir(directory) or not os.listdir(directory):
        return None
    base = f"{directory.rstrip(os.sep)}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
    target, n = base, 1
    while os.path.exists(target):
        n += 1
        target = f"{base}-{n}"
    os.replace(directory, target)
    return target


def _load_finished(cfg: ExperimentConfig, prepared: Prepared, variant: str, directory: str) -> TwoTowerModel:
    """The finished model of ``directory``; `StaleRunError` when its weights do not fit."""
    model = build_model(cfg, prepared, variant)
    try:
        model.load_weights(os.path.join(directory, WEIGHTS))
    except (ValueError, KeyError, OSError) as err:
        raise StaleRunError(
            f"{directory}/{WEIGHTS} does not fit the model of the current settings and data "
            f"({str(err).splitlines()[0][:200]}). It is kept as it is. {WAYS_OUT}"
        ) from None
    return model


def load_or_train(
    cfg: ExperimentConfig,
    prepared: Prepared,
    variant: str,
    directory: str | None = None,
    *,
    retrain: bool = False,
    if_stale: str = "error",
    if_missing: str = "train",
    verbose: int = 1,
) -> tuple[TwoTowerModel, dict[str, Any]]:
    """The finished model of ``variant``, trained first (seeded, resumable) if needed.

    Args:
        cfg: Experiment config.
        prepared: The data, split for the protocol the model is trained under.
        variant: ``id``, ``text`` or ``bert``.
        directory: The run folder; default `run_dir`.
        retrain: Move whatever the folder holds aside (`move_aside`: ``<dir>.bak-<time>``)
            and train from scratch.
        if_stale: When the folder holds a run made with other settings or data: ``error``
            (raise `StaleRunError`, keep the folder) or ``retrain`` (delete and replace it,
            with a warning; only for folders a caller owns, such as a tuner's trials).
        if_missing: When the folder holds no finished model (and not ``retrain``): ``train``
            it (resuming a killed run) or ``error`` (raise `MissingRunError`, create nothing;
            what the read-only commands do).
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).

    Returns:
        (model, info) where info holds variant, best_epoch, valid_metrics, epochs_run,
        train_seconds and refit_on_train_valid.

    Raises:
        StaleRunError: As described under ``if_stale``.
        MissingRunError: As described under ``if_missing``.
    """
    if if_stale not in _IF_STALE:
        raise ConfigError(f"if_stale={if_stale!r}; expected one of {_IF_STALE}")
    if if_missing not in _IF_MISSING:
        raise ConfigError(f"if_missing={if_missing!r}; expected one of {_IF_MISSING}")
    directory = directory or run_dir(cfg, prepared.split.protocol, variant)
    fingerprint = training_fingerprint(variant_config(cfg, variant), prepared)
    replace_stale = False
    if not retrain:
        try:
            _check_not_stale(directory, fingerprint, cfg.data)
        except StaleRunError as err:
            if if_stale == "error":
                raise
            logger.warning("%s: training again", err)
            replace_stale = True
    weights = os.path.join(directory, WEIGHTS)
    info_path = os.path.join(directory, RESULT)
    seed_everything(cfg)
    if not (retrain or replace_stale) and os.path.exists(weights) and os.path.exists(info_path):
        model = _load_finished(cfg, prepared, variant, directory)
        return model, _read_json(info_path)
    if if_missing == "error" and not (retrain or replace_stale):
        status = run_status(directory)
        raise _missing_error([(directory, prepared.split.protocol, variant, status)], "this command")
    if retrain:
        moved = move_aside(directory)
        if moved:
            logger.warning("--retrain: moved the old run %s to %s", directory, moved)
    elif replace_stale:
        shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    write_json(os.path.join(directory, FINGERPRINT), fingerprint)
    write_json(os.path.join(directory, DATA_FILES), file_fingerprints(cfg.data))
    dump_config(cfg, os.path.join(directory, CONFIG))
    result = train_variant(cfg, prepared, variant, directory, verbose=verbose)
    info: dict[str, Any] = {
        "variant": variant,
        "best_epoch": result.best_epoch,
        "valid_metrics": result.valid_metrics,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.seconds, 2),
        "refit_on_train_valid": cfg.train.refit_on_train_valid,
    }
    with atomic_path(weights) as tmp:
        result.model.save_weights(tmp)
    write_json(info_path, info)
    return result.model, info
