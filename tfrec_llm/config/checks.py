"""Validation of a whole experiment config, run whenever an `ExperimentConfig` is built.

Every field is checked, so a bad value fails before any data is read or any model is built. Each
message names the field, the value received, what was expected and the fix, e.g.
``train.patience=-1; expected an integer >= 0. ...``. The first failing check is raised.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tfrec_llm.config.check_messages import Check
from tfrec_llm.config.check_messages import at_least as _at_least
from tfrec_llm.config.check_messages import check as _check
from tfrec_llm.config.check_messages import positive as _positive
from tfrec_llm.config.choices import (
    BASELINES,
    DATA_SOURCES,
    GENERIC_SOURCES,
    METRICS,
    OPTIMIZERS,
    POOLINGS,
    PROTOCOLS,
    STRATEGIES,
)
from tfrec_llm.config.sequence_checks import sequence_checks
from tfrec_llm.config.tune_checks import tune_checks
from tfrec_llm.errors import ConfigError

if TYPE_CHECKING:
    from tfrec_llm.config.sections import ExperimentConfig


_GENERIC_ONLY = (
    "items_path",
    "users_path",
    "columns",
    "item_text_fields",
    "item_categorical_fields",
    "user_profile_fields",
)


def validate(cfg: ExperimentConfig) -> None:
    """Raises at the first invalid field of ``cfg``.

    Raises:
        ConfigError: Naming the field, the value, what was expected and the fix.
    """
    for ok, message in [*section_checks(cfg), *tune_checks(cfg)]:
        if not ok:
            raise ConfigError(message)


def section_checks(cfg: ExperimentConfig) -> list[Check]:
    """Checks of every section but ``tune`` (`tfrec_llm.config.tune_checks` has those)."""
    return [
        _check(bool(cfg.name), "name", cfg.name, "a non-empty name", "Name the experiment."),
        *_data_checks(cfg),
        *_text_checks(cfg),
        *_model_checks(cfg),
        *_eval_checks(cfg),  # before train: train.monitor is checked against eval.ks
        *_train_checks(cfg),
        *_export_checks(cfg),
    ]


def _names(field: str, values: Sequence[str], what: str) -> Check:
    ok = all(v.strip() for v in values) and len(set(values)) == len(values)
    fix = f"Remove empty or repeated {what}."
    return _check(ok, field, values, f"distinct non-empty {what}", fix)


def _data_checks(cfg: Any) -> list[Check]:
    data = cfg.data
    if data.source not in DATA_SOURCES:
        fix = "Use a MovieLens source for MovieLens files, or csv/parquet/jsonl for your own log."
        return [_check(False, "data.source", data.source, f"one of {DATA_SOURCES}", fix)]
    generic = data.source in GENERIC_SOURCES
    what = "the interactions file" if generic else "the unpacked MovieLens folder"
    checks = [
        (
            bool(data.path) or data.source == "movielens_100k",
            f"data.path is empty; data.source={data.source!r} needs {what}. "
            f"Set data.path=<{what.removeprefix('the ')}>.",
        )
    ]
    if not generic:
        for name in _GENERIC_ONLY:
            checks.append(
                _check(
                    not getattr(data, name),
                    f"data.{name}",
                    getattr(data, name),
                    f"empty with data.source={data.source!r}",
                    f"Only the generic sources {GENERIC_SOURCES} read it; MovieLens files have "
                    "fixed names and columns. Remove it, or change data.source.",
                )
            )
    canonical = [c for c, _ in data.columns]
    source = [s for _, s in data.columns]
    columns_ok = all(c.strip() and s.strip() for c, s in data.columns) and (
        len(set(canonical)) == len(canonical) and len(set(source)) == len(source)
    )
    checks += [
        _check(
            columns_ok,
            "data.columns",
            dict(data.columns),
            "canonical name -> file column pairs of non-empty names, each name at most once",
            "Write it as e.g. {user_id: userId, item_id: movieId}.",
        ),
        _names("data.item_text_fields", data.item_text_fields, "column names"),
        _names("data.item_categorical_fields", data.item_categorical_fields, "column names"),
        _names("data.user_profile_fields", data.user_profile_fields, "column names"),
    ]
    return checks


def _text_checks(cfg: Any) -> list[Check]:
    text = cfg.text
    return [
        _template_check(text.template),
        _check(
            2 <= text.max_length <= 512,
            "text.max_length",
            text.max_length,
            "2..512",
            "BERT positions are limited to 512 and need room for [CLS] and [SEP].",
        ),
        _check(
            text.pooling in POOLINGS,
            "text.pooling",
            text.pooling,
            f"one of {POOLINGS}",
            "Use mean (sentence-transformers models) or cls.",
        ),
        _at_least("text.batch_size", text.batch_size, 1, "Texts are encoded in batches this big."),
        _check(
            text.fine_tune_layers >= -1,
            "text.fine_tune_layers",
            text.fine_tune_layers,
            "-1 (all), 0 (frozen) or N > 0",
            "Set the number of top BERT layers to train.",
        ),
        _at_least("text.lora_rank", text.lora_rank, 0, "0 = off; e.g. 4 or 8 for LoRA adapters."),
        _positive("text.lora_alpha", text.lora_alpha, "e.g. 8.0 (the update is scaled by alpha / rank)."),
        _at_least("text.lora_layers", text.lora_layers, 0, "0 = every transformer layer, N = the top N."),
        _check(
            text.lora_rank == 0 or text.fine_tune_layers == 0,
            "text.lora_rank",
            text.lora_rank,
            f"0 while text.fine_tune_layers={text.fine_tune_layers}",
            "Use either LoRA adapters (text.lora_rank) or full fine-tuning (text.fine_tune_layers).",
        ),
    ]


def _template_check(template: str) -> Check:
    """The item text template parses as ``str.format`` with named fields only."""
    expected = "a str.format string with named item columns, e.g. '{title} ({year}). Genres: {genres}'"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        return _check(False, "text.template", template, expected, f"It is malformed ({err}).")
    positional = [f for f in fields if not f or f.isdigit() or "." in f or "[" in f]
    fix = f"Name plain columns instead of {['{' + f + '}' for f in positional]}."
    ok = bool(template.strip()) and not positional
    return _check(ok, "text.template", template, expected, fix)


def _model_checks(cfg: Any) -> list[Check]:
    model = cfg.model
    return [
        _check(
            model.embedding_dim > 0,
            "model.embedding_dim",
            model.embedding_dim,
            "> 0",
            "It is the output width of both towers, e.g. 64.",
        ),
        _check(
            model.history_length > 0,
            "model.history_length",
            model.history_length,
            "> 0",
            "Set how many recent items the query tower sees, or model.use_history=false.",
        ),
        _check(
            model.text_projection_dim > 0,
            "model.text_projection_dim",
            model.text_projection_dim,
            "> 0",
            "It is the hidden width of the text projection, e.g. 128.",
        ),
        _positive("model.temperature", model.temperature, "The logits are divided by it; try 0.1."),
        _check(
            math.isfinite(model.l2) and model.l2 >= 0,
            "model.l2",
            model.l2,
            ">= 0 (finite)",
            "Use 0.0 for no penalty.",
        ),
        _check(
            math.isfinite(model.popularity_prior) and model.popularity_prior >= 0,
            "model.popularity_prior",
            model.popularity_prior,
            ">= 0 (finite)",
            "Use 0.0 for plain cosine scores; it weighs log(1 + TRAIN count), e.g. 0.5.",
        ),
        _check(
            0.0 <= model.id_dropout < 1.0,
            "model.id_dropout",
            model.id_dropout,
            "in [0, 1)",
            "It is the probability of zeroing an item's id embedding in training.",
        ),
        (
            model.use_ids or model.use_text or model.use_categories,
            "model.use_ids, use_text and use_categories are all false: the candidate tower has "
            "no input. Set at least one of them to true.",
        ),
        *sequence_checks(model),
    ]


def _train_checks(cfg: Any) -> list[Check]:
    train = cfg.train
    return [
        _check(bool(train.model_dir), "train.model_dir", train.model_dir, "a folder", "Name a folder."),
        _at_least("train.epochs", train.epochs, 1, "Early stopping usually ends sooner."),
        _check(
            train.batch_size > 1,
            "train.batch_size",
            train.batch_size,
            "> 1",
            "The in-batch softmax needs other examples as negatives; try 512.",
        ),
        _positive("train.learning_rate", train.learning_rate, "Try 0.003."),
        _check(
            train.optimizer in OPTIMIZERS,
            "train.optimizer",
            train.optimizer,
            f"one of {OPTIMIZERS}",
            "Pick a supported optimizer.",
        ),
        _at_least("train.patience", train.patience, 0, "0 stops at the first epoch that does not improve."),
        _monitor_check(train.monitor, cfg.eval.ks),
        _at_least("train.seed", train.seed, 0, "Seeds must be non-negative."),
        _at_least("train.shuffle_buffer", train.shuffle_buffer, 1, "1 means no shuffling."),
        _check(
            train.strategy in STRATEGIES,
            "train.strategy",
            train.strategy,
            f"one of {STRATEGIES}",
            "default trains on one device; docs/scaling.md says which strategy when.",
        ),
    ]


def _monitor_check(monitor: str, ks: tuple[int, ...]) -> Check:
    """``train.monitor`` is ``<metric>@<k>`` with k among the evaluated cut-offs."""
    metric, _, k = monitor.partition("@")
    ok = metric in METRICS and k.isdigit() and int(k) in ks
    expected = f"<metric>@<k> with metric in {METRICS} and k in eval.ks={ks}"
    fix = f"Use e.g. train.monitor=ndcg@{ks[0] if ks else 10}, or add the cut-off to eval.ks."
    return _check(ok, "train.monitor", monitor, expected, fix)


def _eval_checks(cfg: Any) -> list[Check]:
    evaluation = cfg.eval
    ks = evaluation.ks
    return [
        _check(
            evaluation.protocol in PROTOCOLS,
            "eval.protocol",
            evaluation.protocol,
            f"one of {PROTOCOLS}",
            "See docs/evaluation.md for protocols A, B and C.",
        ),
        _check(
            bool(ks) and all(k > 0 for k in ks) and len(set(ks)) == len(ks),
            "eval.ks",
            ks,
            "distinct positive ints",
            "List each cut-off once, e.g. [10, 50].",
        ),
        _check(
            set(evaluation.baselines) <= set(BASELINES)
            and len(set(evaluation.baselines)) == len(evaluation.baselines),
            "eval.baselines",
            evaluation.baselines,
            f"distinct names from {BASELINES}",
            "Remove unknown or repeated names ([] evaluates none).",
        ),
    ]


def _export_checks(cfg: Any) -> list[Check]:
    export = cfg.export
    return [
        _check(
            bool(export.export_dir),
            "export.export_dir",
            export.export_dir,
            "a folder",
            "Name a folder.",
        ),
        _at_least("export.max_k", export.max_k, 1, "It caps the K a request may ask for."),
        (
            1 <= export.default_k <= export.max_k,
            f"export.default_k={export.default_k}, max_k={export.max_k}; expected "
            "1 <= default_k <= max_k. Lower export.default_k or raise export.max_k.",
        ),
        _check(
            re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", export.tf_serving_version) is not None,
            "export.tf_serving_version",
            export.tf_serving_version,
            "a tensorflow/serving release tag X.Y.Z",
            "Give the tag of the server image, e.g. --set export.tf_serving_version=2.20.0.",
        ),
        _check(
            export.item_encoder in ("teacher", "student"),
            "export.item_encoder",
            export.item_encoder,
            "teacher or student",
            "student serves the encoder that `tfrec-llm distill` trains.",
        ),
    ]
