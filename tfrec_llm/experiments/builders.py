"""Builds the models of a config: the one place that turns config sections into Keras objects.

``models/`` takes plain constructor arguments and never reads the config; this module maps the
``model`` and ``text`` sections onto them and loads the catalog's lookup tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfrec_llm.config import ModelConfig, TextConfig
from tfrec_llm.data.catalog import Catalog
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.retrieval import TwoTowerModel


def history_encoder_args(cfg: ModelConfig) -> dict[str, Any] | None:
    """The query tower's ``history_encoder`` argument for the model section, or None.

    None means the original mean pooling: ``history_encoder: mean`` with the ``interaction``
    objective (the running-mean encoder replaces it under ``next_item``, which needs the query
    of every position).
    """
    name = cfg.history_encoder
    if name == "mean":
        return {"name": "mean"} if cfg.objective == "next_item" else None
    if name == "cnn":
        return {"name": name, "filters": cfg.encoder_width}
    if name in ("gru", "lstm"):
        return {"name": name, "units": cfg.encoder_width, "dropout": cfg.encoder_dropout}
    return {
        "name": name,
        "max_length": cfg.history_length,
        "num_blocks": cfg.encoder_blocks,
        "num_heads": cfg.encoder_heads,
        "width": cfg.encoder_width,
        "dropout": cfg.encoder_dropout,
    }


def query_encoder_args(cfg: ModelConfig) -> dict[str, Any]:
    """The query tower's history-encoder and user-dropout arguments (none for the mean-pooling model).

    Omitted when unset, so a mean-pooling model's Keras config is the one it had before
    history encoders existed, and its saved weights load as they are.
    """
    args: dict[str, Any] = {}
    encoder = history_encoder_args(cfg)
    if encoder is not None:
        args["history_encoder"] = encoder
    if cfg.user_dropout:
        args["user_dropout"] = cfg.user_dropout
    if not cfg.normalize:
        args["normalize"] = False
    return args


def _user_text_args(cfg: ModelConfig, text_dim: int) -> dict[str, Any]:
    """``user_text_dim`` and the two text dropouts for the query tower with ``model.user_text`` (else none).

    Raises:
        ConfigError: ``model.user_text`` without precomputed item text vectors.
    """
    if not cfg.user_text:
        return {}
    if text_dim <= 0:
        raise ConfigError(
            "model.user_text=true needs the item text vectors of a frozen BERT (model.use_text: "
            "true, text.fine_tune_layers: 0); the user's text is embedded by the same BERT."
        )
    return {
        "user_text_dim": text_dim,
        "user_text_dropout": cfg.user_text_dropout,
        "user_text_history_dropout": cfg.user_text_history_dropout,
    }


def build_two_tower(
    cfg: ModelConfig,
    catalog: Catalog,
    text_embeddings: np.ndarray | None = None,
    text: TextConfig | None = None,
    text_tokens: tuple[np.ndarray, np.ndarray] | None = None,
) -> TwoTowerModel:
    """Builds a TwoTowerModel for ``catalog`` and loads its lookup tables.

    Args:
        cfg: Model section of the experiment config.
        catalog: Integer tables of the data set (``build_catalog``).
        text_embeddings: [num_items, text_dim] precomputed text embeddings (catalog order);
            required when ``cfg.use_text`` and the text tower is frozen.
        text: Text section of the experiment config. With ``text.fine_tune_layers != 0`` (and
            ``cfg.use_text``) the item tower runs BERT and fine-tunes its top layers.
        text_tokens: (token_ids, attention_mask), each [num_items, text.max_length] int
            (``tfrec_llm.experiments.prepare.tokenize_item_texts``); required when fine-tuning.

    Returns:
        The model with tables loaded and weights created.

    Raises:
        ConfigError: Fine-tuning without ``text_tokens``.
    """
    fine_tune = cfg.use_text and text is not None and text.runs_bert
    text_dim = 0
    if text_embeddings is not None and cfg.use_text and not fine_tune:
        text_dim = int(text_embeddings.shape[1])
    text_tower: dict[str, Any] = {}
    if fine_tune:
        assert text is not None
        if text_tokens is None:
            raise ConfigError(
                f"text.fine_tune_layers={text.fine_tune_layers} needs text_tokens (token_ids, "
                "attention_mask) of the item texts; get them from prepare() or tokenize_item_texts()"
            )
        from tfrec_llm.text.bert_loader import default_model_path

        text_tower = {
            "text_model_path": text.model_path or default_model_path(),
            "text_max_length": text.max_length,
            "text_pooling": text.pooling,
            "fine_tune_layers": text.fine_tune_layers,
            **(
                {
                    "text_lora_rank": text.lora_rank,
                    "text_lora_alpha": text.lora_alpha,
                    "text_lora_layers": text.lora_layers,
                }
                if text.lora_rank
                else {}
            ),
        }
    model = TwoTowerModel(
        item_tower={
            "num_items": catalog.num_items,
            "item_vocab_size": catalog.item_vocab_size,
            "text_dim": text_dim,
            "num_categories": int(catalog.categories.shape[1]),
            "embedding_dim": cfg.embedding_dim,
            "use_ids": cfg.use_ids,
            "use_text": cfg.use_text,
            "use_categories": cfg.use_categories,
            "text_projection_dim": cfg.text_projection_dim,
            "l2": cfg.l2,
            "id_dropout": cfg.id_dropout,
            **text_tower,
            **({} if cfg.normalize else {"normalize": False}),
            **({"text_whitening": True} if cfg.text_whitening else {}),
            **({"text_experts": cfg.text_experts} if cfg.text_experts else {}),
        },
        query_tower={
            "num_users": catalog.num_users,
            "user_vocab_size": catalog.user_vocab_size,
            "profile_sizes": list(catalog.profile_sizes),
            "embedding_dim": cfg.embedding_dim,
            "use_ids": cfg.use_ids and cfg.use_user_ids,
            "use_profile": cfg.use_profile,
            "use_history": cfg.use_history,
            "l2": cfg.l2,
            **query_encoder_args(cfg),
            **_user_text_args(cfg, text_dim),
        },
        history_length=cfg.history_length,
        temperature=cfg.temperature,
        logq_correction=cfg.logq_correction,
        remove_accidental_hits=cfg.remove_accidental_hits,
        objective=cfg.objective,
        future_window=cfg.future_window,
        future_weight=cfg.future_weight,
        future_context=cfg.future_context,
        loss=cfg.loss,
        **({"gbce_negatives": cfg.gbce_negatives, "gbce_t": cfg.gbce_t} if cfg.loss == "gbce" else {}),
        text_alignment=cfg.text_alignment,
        popularity_prior=cfg.popularity_prior,
    )
    tokens = text_tokens if fine_tune and text_tokens is not None else (None, None)
    text_table = text_embeddings if cfg.use_text else None
    model.item_tower.set_tables(catalog.item_id_index, text_table, catalog.categories, *tokens)
    model.query_tower.set_tables(catalog.user_id_index, catalog.profile)
    # Create every weight now, so checkpoints can be restored before the first step.
    model({"user": tf.zeros([1], tf.int32), "history": -tf.ones([1, cfg.history_length], tf.int32)})
    model.candidate_embedding(tf.zeros([1], tf.int32))
    return model
