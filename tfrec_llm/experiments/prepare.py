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
import hashlib
import logging
import os
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from tfrec_llm.config import DataConfig, ExperimentConfig, TextConfig
from tfrec_llm.data.catalog import Catalog, build_catalog
from tfrec_llm.data.readers import read_movielens_1m, read_movielens_100k, read_movielens_raw, read_tabular
from tfrec_llm.data.schema import ITEM_ID, USER_ID, RecDataset
from tfrec_llm.data.splits import Split, check_usable, make_split
from tfrec_llm.errors import DataError
from tfrec_llm.text.templates import render_texts

if TYPE_CHECKING:
    import tensorflow as tf

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
        if cfg.text.runs_bert:
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


def example_shards_dir(cfg: ExperimentConfig, prepared: Prepared, fit_on: str = "train") -> str:
    """Where the streamed training examples of ``cfg`` on ``prepared`` live.

    ``<train.model_dir>/examples/<protocol>/<fit_on>-<objective>-L<history>-<hash>``, the hash
    of the frame's user and item indices, so other data or another split gets other shards.
    """
    users, items = _frame_indices(prepared, fit_on)
    digest = hashlib.sha256(users.tobytes() + items.tobytes()).hexdigest()[:16]
    model = cfg.model
    name = f"{fit_on}-{model.objective}-L{model.history_length}-{digest}"
    return os.path.join(cfg.train.model_dir, "examples", prepared.split.protocol, name)


def _frame_indices(prepared: Prepared, fit_on: str) -> tuple[np.ndarray, np.ndarray]:
    """[n] user and item catalog indices of TRAIN (``fit_on="train"``) or TRAIN+VALID."""
    frame = prepared.split.train if fit_on == "train" else prepared.split.train_valid
    users = prepared.catalog.user_index(frame[USER_ID].to_numpy())
    items = prepared.catalog.item_index(frame[ITEM_ID].to_numpy())
    if (items < 0).any():
        raise DataError("training interactions reference item ids outside the catalog")
    return users.astype(np.int64), items.astype(np.int32)


def write_training_shards(
    cfg: ExperimentConfig,
    prepared: Prepared,
    fit_on: str = "train",
    chunk_rows: int = 200_000,
    examples_per_shard: int | None = None,
) -> str:
    """Writes the training examples of ``cfg`` as TFRecord shards, unless they are there.

    The examples are those ``train_two_tower`` builds in memory (``model.objective``,
    ``model.history_length``), written a chunk of whole users (about ``chunk_rows``
    interactions) at a time; docs/streaming.md.

    Returns:
        The glob of the shards (for `streaming_dataset`).
    """
    from tfrec_llm.data import example_shards

    directory = example_shards_dir(cfg, prepared, fit_on)
    pattern = os.path.join(directory, "examples-*.tfrecord")
    if os.path.exists(os.path.join(directory, "examples" + example_shards.SCHEMA_SUFFIX)):
        return pattern
    users, items = _frame_indices(prepared, fit_on)
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1, len(users)]
    per_shard = examples_per_shard or example_shards.DEFAULT_EXAMPLES_PER_SHARD
    model = cfg.model
    logger.info("writing %s training examples of %d interactions to %s", fit_on, len(users), directory)
    with example_shards.ExampleShardWriter(
        directory, model.objective, model.history_length, prepared.catalog.num_items, per_shard
    ) as writer:
        begin = 0
        while begin < len(users):
            end = int(starts[min(np.searchsorted(starts, begin + chunk_rows), len(starts) - 1)])
            end = end if end > begin else len(users)
            writer.add(users[begin:end], items[begin:end])
            begin = end
    return pattern


def streamed_examples(
    cfg: ExperimentConfig, prepared: Prepared, fit_on: str = "train"
) -> tf.data.Dataset | None:
    """The streamed training batches when ``train.streaming`` is on (shards written on first use).

    Returns:
        A dataset with ``tfdata.make_dataset``'s elements for ``train_two_tower(dataset=...)``,
        or None when ``train.streaming`` is off.
    """
    if not cfg.train.streaming:
        return None
    from tfrec_llm.data.example_shards import streaming_dataset

    pattern = write_training_shards(cfg, prepared, fit_on)
    train = cfg.train
    return streaming_dataset(
        pattern,
        train.batch_size,
        train.shuffle_buffer,
        seed=train.seed,
        objective=cfg.model.objective,
        history_length=cfg.model.history_length,
    )
