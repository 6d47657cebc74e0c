"""Prepare: data set -> protocol split -> catalog -> item texts -> text embeddings.

The first step of every experiment (CLI commands, tuner, benchmarks, the Python API), so they
all read the same data, split it with the one protocol module and encode the same texts.

Example:
    >>> cfg = load_config("pipelines/movielens_100k.yaml")
    >>> prepared = prepare(cfg, protocol="loo")
    >>> prepared.split.test.user_ids[:3], prepared.text_embeddings.shape
"""

from __future__ import annotations

import dataclasses
import logging
import os
import types
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd

from tfrec_llm.config import DataConfig, ExperimentConfig, TextConfig
from tfrec_llm.data.catalog import Catalog, build_catalog
from tfrec_llm.data.readers import read_movielens_1m, read_movielens_100k, read_movielens_raw, read_tabular
from tfrec_llm.data.schema import ITEM_ID, USER_ID, RecDataset
from tfrec_llm.data.splits import Split, check_usable, make_split
from tfrec_llm.text.templates import render_texts

logger = logging.getLogger(__name__)


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

    @property
    def titles(self) -> dict[str, str]:
        """item id -> rendered item text (empty when the data set has no item table)."""
        if not len(self.dataset.items):
            return {}
        return dict(zip(self.split.item_ids, self.item_texts))


def load_dataset(cfg: DataConfig) -> RecDataset:
    """Reads the data set named by the data section of a config.

    For the generic sources each file's format comes from its extension (``.csv``, ``.jsonl``,
    ...), ``data.source`` for a file without a known one: ``data.source: jsonl`` reads a
    ``items.csv`` as CSV.
    """
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
        file_format="auto",
        default_format=cfg.source,
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


def encode_item_texts(
    cfg: TextConfig, texts: list[str], cache_dir: str, show_progress: bool = True
) -> np.ndarray:
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
    settings = types.SimpleNamespace(model_path=path, max_length=cfg.max_length, tokenizer=tokenizer)
    rows = _tokenize(cast(TextEncoder, settings), list(texts))
    token_ids = np.full((len(rows), cfg.max_length), int(tokenizer.pad_token_id), np.int32)
    attention_mask = np.zeros((len(rows), cfg.max_length), np.int32)
    for i, row in enumerate(rows):
        token_ids[i, : len(row)] = row
        attention_mask[i, : len(row)] = 1
    return token_ids, attention_mask


def prepare(
    cfg: ExperimentConfig,
    protocol: str | None = None,
    with_text: bool = True,
    dataset: RecDataset | None = None,
) -> Prepared:
    """Loads the data, splits it under ``protocol`` and computes the item text embeddings.

    With ``cfg.text.fine_tune_layers != 0`` it also tokenizes the item texts (``text_tokens``).

    Args:
        cfg: Experiment config.
        protocol: Overrides ``cfg.eval.protocol``.
        with_text: Compute text embeddings (and tokens; skip for ID-only work).
        dataset: An already loaded data set (skips reading).

    Returns:
        Prepared.

    Raises:
        DataError: If the data cannot be read, or is too small for the protocol
            (`tfrec_llm.data.splits.check_usable`).
    """
    dataset = dataset if dataset is not None else load_dataset(cfg.data)
    split = make_split(dataset, protocol or cfg.eval.protocol)
    check_usable(dataset, split)
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


def user_histories(interactions: pd.DataFrame) -> dict[str, list[str]]:
    """user id -> chronologically ordered item ids (input sorted by user, time, tie_key)."""
    grouped = interactions.groupby(USER_ID, sort=False)[ITEM_ID].agg(list)
    return {str(u): [str(i) for i in items] for u, items in grouped.items()}


def known_histories(prepared: Prepared) -> dict[str, list[str]]:
    """Every interaction known per user, chronological: TRAIN+VALID, then the TEST targets.

    This is what an exported model stores, so that it never recommends an item the user has
    already interacted with.
    """
    histories = user_histories(prepared.split.train_valid)
    test = prepared.split.test
    for user, targets in zip(test.user_ids, test.targets):
        histories.setdefault(str(user), []).extend(str(t) for t in targets)
    return histories
