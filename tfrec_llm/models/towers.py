"""The candidate (item) tower of the retrieval model; the query tower is in ``query_tower.py``.

Both towers take integer indices (see ``tfrec_llm.data.catalog``), never strings: the string
to index mapping lives in the exported serving graph. Lookup tables (id vocabulary index,
precomputed text embeddings, category multi-hot, user profile) are non-trainable variables, so
they travel with checkpoints and SavedModels, and a tower's config holds only sizes.

Stages, in order: inputs -> table lookups -> per-feature encoders -> fusion -> L2 normalise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.text_adaptors import TextMoEAdaptor, TextWhitening


def id_regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    """An L2 penalty of weight ``l2`` for an id embedding, or None when ``l2`` is 0."""
    return keras.regularizers.l2(l2) if l2 > 0 else None


@keras.utils.register_keras_serializable(package="tfrec_llm")
class ItemTower(keras.Model):
    """Maps catalog item indices (any shape) to embeddings [..., embedding_dim], L2-normalised by default.

    Features: the item id embedding (OOV row 0 for items unseen in training), a 2-layer
    projection of the item's precomputed BERT text embedding, and a linear map of its
    category multi-hot. Negative indices (padding) give a zero-input embedding; callers mask them.

    With ``fine_tune_layers != 0`` (and ``use_text``) the text part is computed by a
    ``TextEncoder`` sublayer instead: the item's token ids and attention mask are gathered from
    two non-trainable tables and run through BERT, whose top ``fine_tune_layers`` transformer
    layers (-1 = all) train with the towers. Each call pads the gathered tokens only to the
    longest text among its items. With ``text_lora_rank > 0`` the same ``TextEncoder`` runs, its
    BERT frozen, with LoRA adapters (``tfrec_llm.text.lora``) that train with the towers.

    Args:
        num_items: Catalog size.
        item_vocab_size: Id embedding rows (OOV bucket included).
        text_dim: Width of the precomputed text embeddings (0 if unused).
        num_categories: Width of the multi-hot (0 if unused).
        embedding_dim: Output width.
        use_ids: Use the id embedding.
        use_text: Use the text embedding.
        use_categories: Use the categories.
        text_projection_dim: Hidden width of the text projection.
        l2: L2 penalty on the id embedding.
        id_dropout: Training-time probability of replacing an item's id by the OOV bucket.
        text_model_path: BERT folder of the fine-tuned text encoder (fine-tuning only).
        text_max_length: Width of the token tables (tokens per text, [CLS] and [SEP] included).
        text_pooling: ``mean`` or ``cls`` pooling of the fine-tuned encoder.
        fine_tune_layers: 0 = use the precomputed text table (frozen BERT); N > 0 = fine-tune
            the top N transformer layers; -1 = fine-tune all of BERT. With fine-tuning,
            ``text_dim`` may be 0 (it becomes BERT's hidden size).
        text_lora_rank: > 0: LoRA adapters of this rank on BERT's query/value projections (BERT
            runs in the tower as with fine-tuning; needs ``fine_tune_layers`` 0).
        text_lora_alpha: LoRA scale numerator (update scaled by alpha / rank).
        text_lora_layers: 0 = adapters in every transformer layer; N = the top N.
        normalize: L2-normalise the output (cosine scores); False keeps the raw vector, whose
            norm can carry an item's popularity.
        text_whitening: Whiten the frozen text vectors (``TextWhitening``, fitted on the
            catalog's text table by ``set_tables``) before the projection.
        text_experts: > 0: the projection's hidden layer is a ``TextMoEAdaptor`` of that many
            experts instead of one Dense.

    Example:
        >>> tower = ItemTower(num_items=3, item_vocab_size=3, text_dim=4, num_categories=2)
        >>> tower.set_tables(np.array([1, 2, 0]), np.ones([3, 4]), np.eye(3, 2))
        >>> tower(tf.constant([0, 2])).shape
        TensorShape([2, 64])
    """

    def __init__(
        self,
        num_items: int,
        item_vocab_size: int,
        text_dim: int = 0,
        num_categories: int = 0,
        embedding_dim: int = 64,
        use_ids: bool = True,
        use_text: bool = True,
        use_categories: bool = True,
        text_projection_dim: int = 128,
        l2: float = 0.0,
        id_dropout: float = 0.0,
        text_model_path: str = "",
        text_max_length: int = 64,
        text_pooling: str = "mean",
        fine_tune_layers: int = 0,
        normalize: bool = True,
        text_whitening: bool = False,
        text_experts: int = 0,
        text_lora_rank: int = 0,
        text_lora_alpha: float = 8.0,
        text_lora_layers: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # The constructor arguments are kept as passed (get_config returns them); what they
        # imply is derived into the private fields below.
        text_encoder = None
        text_width = text_dim
        lora = {"lora_rank": text_lora_rank, "lora_alpha": text_lora_alpha, "lora_layers": text_lora_layers}
        if use_text and (fine_tune_layers != 0 or text_lora_rank > 0):
            text_encoder, text_width = _fine_tuned_encoder(
                text_model_path, text_max_length, text_pooling, fine_tune_layers, text_dim, lora
            )
        if use_text and text_width <= 0:
            raise ConfigError(f"ItemTower: use_text=True needs text_dim > 0, got text_dim={text_dim}")
        # Categories are skipped when the data set has no categorical item fields.
        with_categories = use_categories and num_categories > 0
        if not (use_ids or use_text or with_categories):
            raise ConfigError("ItemTower: use_ids, use_text and use_categories are all false")
        if (text_whitening or text_experts) and (not use_text or text_encoder is not None):
            raise ConfigError("ItemTower: text_whitening/text_experts need use_text and a frozen text table")
        if text_experts < 0:
            raise ConfigError(f"ItemTower: text_experts must be >= 0, got {text_experts}")
        self._text_width = text_width
        self._with_categories = with_categories
        self.num_items = num_items
        self.item_vocab_size = item_vocab_size
        self.text_dim = text_dim
        self.num_categories = num_categories
        self.embedding_dim = embedding_dim
        self.use_ids = use_ids
        self.use_text = use_text
        self.use_categories = use_categories
        self.text_projection_dim = text_projection_dim
        self.l2 = l2
        self.id_dropout = id_dropout
        self.text_model_path = text_model_path
        self.text_max_length = text_max_length
        self.text_pooling = text_pooling
        self.fine_tune_layers = fine_tune_layers
        self.normalize = normalize
        self.text_whitening = text_whitening
        self.text_experts = text_experts
        self.text_lora_rank = text_lora_rank
        self.text_lora_alpha = text_lora_alpha
        self.text_lora_layers = text_lora_layers

        self.id_index = tf.Variable(tf.zeros([num_items], tf.int32), trainable=False, name="id_index")
        # Only the sublayers of the enabled features exist (unbuilt layers break training).
        self.id_embedding = (
            keras.layers.Embedding(
                item_vocab_size,
                embedding_dim,
                embeddings_regularizer=id_regularizer(l2),
                name="item_id_embedding",
            )
            if use_ids
            else None
        )
        table_dim = max(text_width, 1) if text_encoder is None else 1  # unused when fine-tuning
        self.text_table = tf.Variable(tf.zeros([num_items, table_dim]), trainable=False, name="text_table")
        self.whitening = TextWhitening(text_width, name="text_whitening") if text_whitening else None
        hidden = (
            TextMoEAdaptor(text_experts, text_projection_dim, activation="gelu")
            if text_experts
            else keras.layers.Dense(text_projection_dim, activation="gelu")
        )
        self.text_projection = (
            keras.Sequential([hidden, keras.layers.Dense(embedding_dim)], name="text_projection")
            if use_text
            else None
        )
        self.category_table = tf.Variable(
            tf.zeros([num_items, max(num_categories, 1)]), trainable=False, name="category_table"
        )
        self.category_projection = (
            keras.layers.Dense(embedding_dim, name="category_projection") if with_categories else None
        )
        n_parts = int(use_ids) + int(use_text) + int(with_categories)
        self.fusion = keras.layers.Dense(embedding_dim, name="fusion") if n_parts > 1 else None
        # Fine-tuning only (frozen towers keep exactly their former weights and checkpoints).
        self.text_encoder = text_encoder
        self.text_token_ids: tf.Variable | None = None
        self.text_attention_mask: tf.Variable | None = None
        if text_encoder is not None:
            zeros = tf.zeros([num_items, text_max_length], tf.int32)
            self.text_token_ids = tf.Variable(zeros, trainable=False, name="text_token_ids")
            self.text_attention_mask = tf.Variable(zeros, trainable=False, name="text_attention_mask")

    def set_tables(
        self,
        id_index: np.ndarray,
        text_embeddings: np.ndarray | None = None,
        categories: np.ndarray | None = None,
        token_ids: np.ndarray | None = None,
        attention_mask: np.ndarray | None = None,
    ) -> None:
        """Loads the per-item lookup tables (catalog order).

        A fine-tuned tower needs ``token_ids`` and ``attention_mask`` ([num_items,
        text_max_length] ints, right-padded) and ignores ``text_embeddings``; a frozen one needs
        ``text_embeddings`` and ignores the tokens.
        """
        self.id_index.assign(np.asarray(id_index, np.int32))
        if self.text_encoder is not None:
            self._set_token_tables(token_ids, attention_mask)
        elif self.use_text:
            expected = (self.num_items, self._text_width)
            if text_embeddings is None or text_embeddings.shape != expected:
                got = None if text_embeddings is None else text_embeddings.shape
                raise ConfigError(f"ItemTower.set_tables: text_embeddings shape {got}, expected {expected}")
            self.text_table.assign(np.asarray(text_embeddings, np.float32))
            if self.whitening is not None:
                self.whitening.adapt(text_embeddings)
        if self._with_categories and categories is not None:
            self.category_table.assign(np.asarray(categories, np.float32))

    def call(self, item_index: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        item_index = tf.cast(item_index, tf.int32)
        shape = tf.shape(item_index)
        flat = tf.reshape(item_index, [-1])
        safe = tf.maximum(flat, 0)
        parts = []
        if self.use_ids:
            vocab_index = tf.gather(self.id_index, safe)
            if training and self.id_dropout > 0:
                drop = tf.random.uniform(tf.shape(vocab_index)) < self.id_dropout
                vocab_index = tf.where(drop, tf.zeros_like(vocab_index), vocab_index)
            parts.append(self.id_embedding(vocab_index))
        if self.use_text:
            parts.append(self.text_part(safe, training))
        out = self._fuse(parts, safe)
        return tf.reshape(out, tf.concat([shape, [self.embedding_dim]], axis=0))

    def embed_text_vectors(self, items: tf.Tensor, text_vectors: tf.Tensor) -> tf.Tensor:
        """[n] catalog indices + [n, text_dim] text vectors -> [n, embedding_dim], as cold items.

        The tower's output (inference mode) with each item's text vector replaced by the given
        one and its id by the OOV row, as for an item never seen in training: what a student
        text encoder's vectors give through this tower (its retrieval term; gradients flow to
        ``text_vectors``). Categories come from the tower's table.

        Raises:
            ConfigError: The tower has no frozen text table (no text, or a fine-tuned encoder).
        """
        if not self.use_text or self.text_encoder is not None:
            raise ConfigError("ItemTower.embed_text_vectors needs use_text with a frozen text table")
        items = tf.maximum(tf.cast(items, tf.int32), 0)
        text = tf.cast(text_vectors, tf.float32)
        parts = []
        if self.use_ids:
            parts.append(self.id_embedding(tf.zeros_like(items)))
        parts.append(self.text_projection(self.whitening(text) if self.whitening is not None else text))
        return self._fuse(parts, items)

    def _fuse(self, parts: list[tf.Tensor], items: tf.Tensor) -> tf.Tensor:
        """Adds the category part of ``items`` to ``parts``, fuses and (optionally) normalises."""
        if self._with_categories:
            parts = [*parts, self.category_projection(tf.gather(self.category_table, items))]
        fused = self.fusion(tf.concat(parts, axis=-1)) if self.fusion is not None else parts[0]
        return tf.math.l2_normalize(fused, axis=-1) if self.normalize else fused

    def text_part(self, items: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[n] catalog indices (>= 0) -> [n, embedding_dim] projected text vectors (before fusion)."""
        if self.text_encoder is not None:
            return self.text_projection(self._encode_text(items, training))
        text = tf.gather(self.text_table, items)
        return self.text_projection(self.whitening(text) if self.whitening is not None else text)

    def id_part(self, items: tf.Tensor) -> tf.Tensor:
        """[n] catalog indices (>= 0) -> [n, embedding_dim] id embeddings (no dropout)."""
        return self.id_embedding(tf.gather(self.id_index, items))

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as passed, plus the base fields (``name``, ...)."""
        # keras.Model.get_config returns {} for a subclassed model; Layer's has the base fields.
        return {
            **keras.layers.Layer.get_config(self),
            "num_items": self.num_items,
            "item_vocab_size": self.item_vocab_size,
            "text_dim": self.text_dim,
            "num_categories": self.num_categories,
            "embedding_dim": self.embedding_dim,
            "use_ids": self.use_ids,
            "use_text": self.use_text,
            "use_categories": self.use_categories,
            "text_projection_dim": self.text_projection_dim,
            "l2": self.l2,
            "id_dropout": self.id_dropout,
            "text_model_path": self.text_model_path,
            "text_max_length": self.text_max_length,
            "text_pooling": self.text_pooling,
            "fine_tune_layers": self.fine_tune_layers,
            # Only when off, so the configs of normalising towers stay as they were.
            **({} if self.normalize else {"normalize": False}),
            **({"text_whitening": True} if self.text_whitening else {}),
            **({"text_experts": self.text_experts} if self.text_experts else {}),
            **(self._lora_config() if self.text_lora_rank else {}),
        }

    def _lora_config(self) -> dict[str, Any]:
        return {
            "text_lora_rank": self.text_lora_rank,
            "text_lora_alpha": self.text_lora_alpha,
            "text_lora_layers": self.text_lora_layers,
        }

    def _set_token_tables(self, token_ids: np.ndarray | None, attention_mask: np.ndarray | None) -> None:
        expected = (self.num_items, self.text_max_length)
        for name, table in (("token_ids", token_ids), ("attention_mask", attention_mask)):
            got = None if table is None else np.shape(table)
            if got != expected:
                raise ConfigError(
                    f"ItemTower.set_tables: {name} shape {got}, expected {expected}; "
                    f"fine_tune_layers={self.fine_tune_layers} needs the tokenized item texts "
                    "(tfrec_llm.experiments.prepare.tokenize_item_texts)"
                )
        assert self.text_token_ids is not None and self.text_attention_mask is not None
        self.text_token_ids.assign(np.asarray(token_ids, np.int32))
        self.text_attention_mask.assign(np.asarray(attention_mask, np.int32))

    def _encode_text(self, items: tf.Tensor, training: bool | None) -> tf.Tensor:
        """[n] catalog indices -> [n, text_dim] fine-tuned BERT embeddings of their texts."""
        assert self.text_encoder is not None and self.text_token_ids is not None
        ids = tf.gather(self.text_token_ids, items)
        mask = tf.gather(self.text_attention_mask, items)
        # Tokens are right-padded: cut the columns that are padding for every item of the call.
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(mask, axis=1)), 1)
        return self.text_encoder.encode_tokens(ids[:, :width], mask[:, :width], training=training)


def _fine_tuned_encoder(
    model_path: str, max_length: int, pooling: str, fine_tune_layers: int, text_dim: int, lora: dict[str, Any]
) -> tuple[Any, int]:
    """The TextEncoder of a fine-tuned (or LoRA-adapted) ItemTower and the width of its output."""
    if not model_path:
        raise ConfigError(
            f"ItemTower: fine_tune_layers={fine_tune_layers} needs text_model_path, the BERT "
            "folder to fine-tune; pass it, or fine_tune_layers=0 for the precomputed text table"
        )
    # Imported here: it loads transformers, which only a fine-tuned tower needs.
    from tfrec_llm.text.encoder import TextEncoder

    encoder = TextEncoder(
        model_path,
        max_length=max_length,
        pooling=pooling,
        trainable_layers=fine_tune_layers,
        name="text_encoder",
        **(lora if lora["lora_rank"] else {}),
    )
    if text_dim not in (0, encoder.hidden_size):
        raise ConfigError(
            f"ItemTower: text_dim={text_dim} but the BERT in {model_path!r} has hidden size "
            f"{encoder.hidden_size}; pass text_dim=0 or {encoder.hidden_size} when fine-tuning"
        )
    return encoder, encoder.hidden_size
