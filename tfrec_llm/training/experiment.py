"""One experiment end to end: data -> split -> text embeddings -> train -> evaluate.

This is the layer the CLI, the benchmarks and the tuner share, so they all run the very same
split, text and metric code.

Example:
    >>> cfg = load_config("pipelines/movielens_100k.yaml")
    >>> prepared = prepare(cfg, protocol="loo")
    >>> result = train_variant(cfg, prepared, "bert", "runs/ml100k/bert")
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import types
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from tfrec_llm.config import DataConfig, ExperimentConfig, TextConfig, config_to_dict, replace
from tfrec_llm.data.catalog import Catalog, build_catalog
from tfrec_llm.data.readers import read_movielens_1m, read_movielens_100k, read_movielens_raw, read_tabular
from tfrec_llm.data.schema import ITEM_ID, USER_ID, RecDataset
from tfrec_llm.data.splits import Split, make_split
from tfrec_llm.errors import ConfigError
from tfrec_llm.text.templates import render_texts
from tfrec_llm.experiments.builders import build_two_tower
from tfrec_llm.models.retrieval import TwoTowerModel
from tfrec_llm.training.trainer import TrainResult, train_two_tower

logger = logging.getLogger(__name__)

# Model variants compared in every report: what the candidate tower may use.
VARIANTS: dict[str, dict[str, bool]] = {
    "id": {"use_ids": True, "use_text": False, "use_categories": False},
    "text": {"use_ids": False, "use_text": True, "use_categories": True},
    "bert": {"use_ids": True, "use_text": True, "use_categories": True},
}
VARIANT_NAMES = {"id": "TwoTower-ID", "text": "TwoTower-TextOnly", "bert": "TwoTower-BERT"}


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A data set made ready for one protocol.

    Attributes:
        dataset: Canonical frames.
        split: The protocol split.
        catalog: Integer tables for the models.
        item_texts: Rendered text of every catalog item (catalog order).
        text_embeddings: [num_items, dim] BERT embeddings of ``item_texts``, or None.
        text_tokens: (token_ids, attention_mask) of ``item_texts``, [num_items, max_length]
            int32 each, when ``text.fine_tune_layers != 0``; else None.
    """

    dataset: RecDataset
    split: Split
    catalog: Catalog
    item_texts: tuple[str, ...]
    text_embeddings: np.ndarray | None
    text_tokens: tuple[np.ndarray, np.ndarray] | None = None


def load_dataset(cfg: DataConfig) -> RecDataset:
    """Reads the data set named by the data section of a config."""
    if cfg.source == "movielens_100k":
        return read_movielens_100k(cfg.path or None, strict=cfg.strict)
    if cfg.source == "movielens_100k_raw":
        return read_movielens_raw(cfg.path, strict=cfg.strict)
    if cfg.source == "movielens_1m":
        return read_movielens_1m(cfg.path, strict=cfg.strict)
    return read_tabular(
        cfg.path,
        cfg.items_path or None,
        cfg.users_path or None,
        columns=dict(cfg.columns),
        item_text_fields=cfg.item_text_fields,
        item_categorical_fields=cfg.item_categorical_fields,
        user_profile_fields=cfg.user_profile_fields,
        file_format=cfg.source,
        strict=cfg.strict,
    )


def item_texts(dataset: RecDataset, item_ids: np.ndarray, template: str) -> list[str]:
    """Renders the text of each item of ``item_ids`` (catalog order) with ``template``."""
    items = dataset.items.set_index(ITEM_ID).reindex(item_ids).reset_index()
    return render_texts(items, template)


def text_model_path(cfg: TextConfig) -> str:
    """The BERT folder of the config (the bundled MiniLM when empty)."""
    from tfrec_llm.text.bert_loader import default_model_path

    return cfg.model_path or default_model_path()


def encode_item_texts(cfg: TextConfig, texts: list[str], cache_dir: str, show_progress: bool = True) -> np.ndarray:
    """BERT embeddings of ``texts``, from the on-disk cache when possible.

    The cache is keyed by the model fingerprint, pooling and max length, and by each text's
    hash, so a second run, or a run with a few changed items, encodes only what is new.
    """
    from tfrec_llm.text.bert_loader import model_fingerprint
    from tfrec_llm.text.cache import EmbeddingCache
    from tfrec_llm.text.encoder import TextEncoder, encode_texts

    path = text_model_path(cfg)
    key = f"{model_fingerprint(path)}-{cfg.pooling}-{cfg.max_length}"
    cache = EmbeddingCache(cache_dir)

    def encode(missing: list[str]) -> np.ndarray:
        logger.info("encoding %d item texts with %s", len(missing), path)
        encoder = TextEncoder(path, max_length=cfg.max_length, pooling=cfg.pooling)
        return encode_texts(encoder, missing, batch_size=cfg.batch_size, show_progress=show_progress)

    return cache.get_or_encode(key, texts, encode)


def tokenize_item_texts(cfg: TextConfig, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token tables of ``texts`` for an item tower that fine-tunes BERT.

    Tokenizes the way ``encode_texts`` does (the folder's ``tokenizer.json`` with the fast
    ``tokenizers`` library, after the normalisation of the in-graph tokenizer, so the ids equal
    those the exported item_encoder computes), truncates to ``cfg.max_length`` and right-pads
    with [PAD].

    Returns:
        (token_ids, attention_mask), int32 [len(texts), cfg.max_length] each.
    """
    from tfrec_llm.text.encoder import TextEncoder, _tokenize
    from tfrec_llm.text.tokenizer import load_tokenizer

    path = text_model_path(cfg)
    tokenizer = load_tokenizer(path, max_length=cfg.max_length)
    # _tokenize reads only these attributes of an encoder; building the BERT is not needed.
    settings = types.SimpleNamespace(
        model_path=path, max_length=cfg.max_length, tokenizer=tokenizer
    )
    rows = _tokenize(cast(TextEncoder, settings), list(texts))
    token_ids = np.full((len(rows), cfg.max_length), int(tokenizer.pad_token_id), np.int32)
    attention_mask = np.zeros((len(rows), cfg.max_length), np.int32)
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return token_ids, attention_mask


def prepare(cfg: ExperimentConfig, protocol: str | None = None, with_text: bool = True, dataset: RecDataset | None = None) -> Prepared:
    """Loads the data, splits it under ``protocol`` and computes the item text embeddings.

    With ``cfg.text.fine_tune_layers != 0`` it also tokenizes the item texts (``text_tokens``).

    Args:
        cfg: Experiment config.
        protocol: Overrides ``cfg.eval.protocol``.
        with_text: Compute text embeddings (and tokens; skip for ID-only work).
        dataset: An already loaded data set (skips reading).

    Returns:
        Prepared.
    """
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    split = make_split(dataset, protocol or cfg.eval.protocol)
    catalog = build_catalog(dataset, split)
    texts = item_texts(dataset, split.item_ids, cfg.text.template)
    embeddings = None
    tokens = None
    if with_text:
        cache_dir = cfg.text.cache_dir or os.path.join(cfg.train.model_dir, "text_cache")
        embeddings = encode_item_texts(cfg.text, texts, cache_dir)
        if cfg.text.fine_tune_layers != 0:
            tokens = tokenize_item_texts(cfg.text, texts)
    return Prepared(dataset, split, catalog, tuple(texts), embeddings, tokens)


def variant_config(cfg: ExperimentConfig, variant: str) -> ExperimentConfig:
    """``cfg`` with the candidate-tower switches of ``variant`` (``id``, ``text``, ``bert``)."""
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r}; expected one of {sorted(VARIANTS)}")
    return replace(cfg, **{f"model__{k}": v for k, v in VARIANTS[variant].items()})


def train_variant(
    cfg: ExperimentConfig, prepared: Prepared, variant: str, model_dir: str, verbose: int = 1
) -> TrainResult:
    """Trains one model variant on the prepared split (early stopping on VALID).

    With ``train.refit_on_train_valid`` the model is then retrained from scratch on
    TRAIN+VALID for the best number of epochs.
    """
    vcfg = variant_config(cfg, variant)
    text = prepared.text_embeddings if vcfg.model.use_text else None
    if vcfg.model.use_text and text is None:
        raise ConfigError(f"variant {variant!r} needs text embeddings; call prepare(..., with_text=True)")
    tokens = _text_tokens(vcfg, prepared, variant)
    name = VARIANT_NAMES[variant]
    result = train_two_tower(
        vcfg,
        prepared.split,
        prepared.catalog,
        text,
        model_dir,
        verbose=verbose,
        name=name,
        text_tokens=tokens,
    )
    if vcfg.train.refit_on_train_valid and result.best_epoch >= 0:
        refit = train_two_tower(
            vcfg,
            prepared.split,
            prepared.catalog,
            text,
            os.path.join(model_dir, "refit"),
            fit_on="train_valid",
            epochs=result.best_epoch + 1,
            validate=False,
            verbose=verbose,
            name=name,
            text_tokens=tokens,
        )
        result = dataclasses.replace(refit, best_epoch=result.best_epoch, valid_metrics=result.valid_metrics)
    return result


def _text_tokens(
    vcfg: ExperimentConfig, prepared: Prepared, variant: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The item token tables when ``variant`` fine-tunes BERT (None otherwise)."""
    if not (vcfg.model.use_text and vcfg.text.fine_tune_layers != 0):
        return None
    if prepared.text_tokens is None:
        raise ConfigError(
            f"variant {variant!r} with text.fine_tune_layers={vcfg.text.fine_tune_layers} needs "
            "the tokenized item texts; call prepare(...) with that config and with_text=True"
        )
    return prepared.text_tokens


def load_or_train(
    cfg: ExperimentConfig,
    prepared: Prepared,
    variant: str,
    model_dir: str,
    retrain: bool = False,
    verbose: int = 1,
) -> tuple[TwoTowerModel, dict[str, object]]:
    """Returns the finished model of ``variant`` in ``model_dir``, training it first if needed.

    A finished run leaves ``model.weights.h5`` and ``result.json`` in ``model_dir``; anything
    less (no run, or a killed one) trains, resuming from the backup when there is one. The
    config sections that shape the model are recorded in ``training_config.json``; a folder
    trained with other settings is cleared and trained again (with a warning), never reused.

    Returns:
        (model, info) where info holds best_epoch, valid_metrics, epochs_run, train_seconds.
    """
    weights = os.path.join(model_dir, "model.weights.h5")
    info_path = os.path.join(model_dir, "result.json")
    marker = os.path.join(model_dir, "training_config.json")
    vcfg = variant_config(cfg, variant)
    fingerprint = training_fingerprint(vcfg)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) != fingerprint:
                logger.warning("%s holds a model trained with other settings: training again", model_dir)
                retrain = True
    if not retrain and os.path.exists(weights) and os.path.exists(info_path):
        model = build_two_tower(
            vcfg.model,
            prepared.catalog,
            prepared.text_embeddings if vcfg.model.use_text else None,
            vcfg.text,
            _text_tokens(vcfg, prepared, variant),
        )
        model.load_weights(weights)
        with open(info_path, encoding="utf-8") as f:
            return model, json.load(f)
    if retrain:
        shutil.rmtree(model_dir, ignore_errors=True)
    os.makedirs(model_dir, exist_ok=True)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump(fingerprint, f, indent=1)
    result = train_variant(cfg, prepared, variant, model_dir, verbose=verbose)
    info: dict[str, object] = {
        "variant": variant,
        "best_epoch": result.best_epoch,
        "valid_metrics": result.valid_metrics,
        "epochs_run": result.epochs_run,
        "train_seconds": round(result.seconds, 2),
        "refit_on_train_valid": vcfg.train.refit_on_train_valid,
    }
    tmp_weights = os.path.join(model_dir, "model.tmp.weights.h5")
    result.model.save_weights(tmp_weights)
    os.replace(tmp_weights, weights)
    with open(info_path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    os.replace(info_path + ".tmp", info_path)
    return result.model, info


def training_fingerprint(cfg: ExperimentConfig) -> dict[str, object]:
    """The config sections that decide a trained model (not where files go), as plain data."""
    values = config_to_dict(cfg)
    values["train"].pop("model_dir", None)
    values["text"].pop("cache_dir", None)
    values["text"].pop("batch_size", None)
    return {key: values[key] for key in ("data", "text", "model", "train")}


def user_histories(interactions: pd.DataFrame) -> dict[str, list[str]]:
    """user id -> chronologically ordered item ids (input sorted by user, time, tie_key)."""
    grouped = interactions.groupby(USER_ID, sort=False)[ITEM_ID].agg(list)
    return {str(u): [str(i) for i in items] for u, items in grouped.items()}
