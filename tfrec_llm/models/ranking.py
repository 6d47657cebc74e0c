"""The ranking model (second stage): a ``tfrs.Model`` on ``tfrs.tasks.Ranking`` with DCN-v2 crossing.

Features of one (user, item) pair, concatenated into ``x0``:

- the user: the query tower's vector (user id with its OOV row, profile fields, and the
  history encoded by the tower's history encoder over item-tower embeddings);
- the item: the item tower's vector (id with its OOV row, projected BERT text embedding from
  the precomputed text table, categories) and the item's raw category multi-hot;
- their elementwise product (a learned, per-dimension dot product);
- optionally the retrieval score of the pair (``use_retrieval_score``).

With ``item_item`` the score also gets ``w * sum_{i in history} B[i, c]``: an item-item
collaborative score (``B`` the EASE weights of TRAIN, `tfrec_llm.models.item_item`, a
non-trainable table) times a scalar ``w`` that is fitted, not trained by gradient steps
(``set_item_item``, docs/two_stage.md). ``w`` is 0 until set, so the model then scores as
without it. With ``cold_item_transfer`` a per-item mask (``item_known``, set with the table)
drops the retrieval term and ``f`` of items without TRAIN interactions: a new item is scored by
the item-item term alone, its rows and columns borrowed from its text neighbours
(`tfrec_llm.models.cold_transfer`). Neither learned term has seen such an item as a positive.

With ``residual_temperature`` T > 0 the model is a residual on the first stage: the score is
``retrieval_score / T + f(x0)``, ``f``'s output unit initialised at zero, so an untrained model
ranks exactly as retrieval does and training only moves away from it where the data supports it.

``x0`` goes through a ``CrossNetwork`` (cross layers + deep MLP, stacked or parallel) and a
final dense unit. Three objectives, each a ``tfrs.tasks.Ranking``:

- ``rating``: ``features["rating"]`` [batch]; MSE loss, RMSE metric;
- ``ctr``: ``features["label"]`` [batch] 1 = clicked, 0 = sampled negative; the output is a
  logit; log loss, AUC;
- ``listwise``: ``features["item"]`` [batch, list] candidates and ``features["label"]``
  [batch, list] relevance (normalised to a distribution); softmax cross-entropy over the list.

Inputs are catalog indices (``user`` [batch], ``history`` [batch, L] -1 padded), as the
retrieval model's; ``score_candidates`` scores [batch, N] candidates of each user in one call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.config.ranking_checks import RANKING_OBJECTIVES
from tfrec_llm.errors import ConfigError
from tfrec_llm.models.item_item import check_item_item_size
from tfrec_llm.models.layers.cross_network import CrossNetwork
from tfrec_llm.models.query_tower import QueryTower
from tfrec_llm.models.retrieval import _plain
from tfrec_llm.models.towers import ItemTower


def ranking_task(objective: str) -> tfrs.tasks.Ranking:
    """The ``tfrs.tasks.Ranking`` of an objective: its loss and metrics.

    Raises:
        ConfigError: ``objective`` is not one of ``RANKING_OBJECTIVES``.
    """
    if objective == "rating":
        return tfrs.tasks.Ranking(
            loss=keras.losses.MeanSquaredError(),
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
    if objective == "ctr":
        return tfrs.tasks.Ranking(
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[
                keras.metrics.AUC(from_logits=True, name="auc"),
                keras.metrics.BinaryCrossentropy(from_logits=True, name="log_loss"),
            ],
        )
    if objective == "listwise":
        return tfrs.tasks.Ranking(
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.CategoricalAccuracy(name="top1_accuracy")],
        )
    raise ConfigError(f"ranking objective must be one of {RANKING_OBJECTIVES}, got {objective!r}")


@keras.utils.register_keras_serializable(package="tfrec_llm")
class RankingModel(tfrs.Model):
    """Scores (user, item) pairs from user, history, item and retrieval-score features (DCN-v2).

    Args:
        item_tower: ``ItemTower`` config dict (its lookup tables are set after building).
        query_tower: ``QueryTower`` config dict.
        cross: ``CrossNetwork`` config dict (``cross_layers``, ``structure``, ...).
        objective: ``rating``, ``ctr`` or ``listwise``.
        use_retrieval_score: Read ``features["retrieval_score"]`` (same shape as ``item``).
        output_bias: Initial bias of the output unit (e.g. the mean rating of TRAIN).
        residual_temperature: > 0: score = retrieval score / this + the network's output (zero
            at initialisation); needs the retrieval scores. 0: the network's output alone.
        item_item: Add ``item_item_weight * sum over the history of item_item_table[h, c]``
            (both set by `set_item_item`; 0 until then).
        cold_item_transfer: With ``item_item``: the retrieval term and ``f`` of a candidate count
            only where ``item_known`` (set by `set_item_item`, all ones until then) is 1.

    Example:
        >>> model = RankingModel(
        ...     item_tower={"num_items": 5, "item_vocab_size": 6, "embedding_dim": 8,
        ...                 "use_text": False, "use_categories": False},
        ...     query_tower={"num_users": 3, "user_vocab_size": 4, "embedding_dim": 8},
        ...     cross={"cross_layers": 2, "deep_layers": [16]})
        >>> model.score_candidates({"user": tf.constant([0]), "history": -tf.ones([1, 4], tf.int32)},
        ...                        tf.constant([[1, 2, 3]])).shape
        TensorShape([1, 3])
    """

    def __init__(
        self,
        item_tower: Mapping[str, Any],
        query_tower: Mapping[str, Any],
        cross: Mapping[str, Any] | None = None,
        objective: str = "rating",
        use_retrieval_score: bool = False,
        output_bias: float = 0.0,
        residual_temperature: float = 0.0,
        item_item: bool = False,
        cold_item_transfer: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if objective not in RANKING_OBJECTIVES:
            raise ConfigError(
                f"RankingModel: objective must be one of {RANKING_OBJECTIVES}, got {objective!r}"
            )
        self.item_tower_config = dict(item_tower)
        self.query_tower_config = dict(query_tower)
        self.cross_config = dict(cross or {})
        self.objective = objective
        self.use_retrieval_score = bool(use_retrieval_score)
        self.output_bias = float(output_bias)
        self.residual_temperature = float(residual_temperature)
        self.item_item = bool(item_item)
        self.cold_item_transfer = bool(cold_item_transfer)
        if self.cold_item_transfer and not self.item_item:
            raise ConfigError("RankingModel: cold_item_transfer=True needs item_item=True")
        self.item_tower = ItemTower(**self.item_tower_config)
        self.query_tower = QueryTower(**self.query_tower_config)
        self.cross_network = CrossNetwork(name="cross_network", **self.cross_config)
        residual = self.residual_temperature > 0.0
        self.output_layer = keras.layers.Dense(
            1,
            kernel_initializer="zeros" if residual else "glorot_uniform",
            bias_initializer=keras.initializers.Constant(self.output_bias),
            name="score",
        )
        self.task = ranking_task(objective)
        self.item_item_table: tf.Variable | None = None
        self.item_item_weight: tf.Variable | None = None
        if self.item_item:
            n = self.item_tower.num_items
            check_item_item_size(n)
            self.item_item_table = tf.Variable(tf.zeros([n, n]), trainable=False, name="item_item_table")
            self.item_item_weight = tf.Variable(0.0, trainable=False, name="item_item_weight")
        self.item_known: tf.Variable | None = None
        if self.cold_item_transfer:
            n = self.item_tower.num_items
            self.item_known = tf.Variable(tf.ones([n]), trainable=False, name="item_known")

    def set_item_item(self, table: np.ndarray, weight: float, known: np.ndarray | None = None) -> None:
        """Loads the [num_items, num_items] item-item weights and their scalar weight ``w``.

        ``known`` ([num_items] bool, True for items with TRAIN interactions) is required with
        ``cold_item_transfer`` and refused without it.

        Raises:
            ConfigError: The model was built without ``item_item``, ``table`` or ``known`` has
                the wrong shape, or ``known`` is given without ``cold_item_transfer`` (or missing
                with it).
        """
        if self.item_item_table is None or self.item_item_weight is None:
            raise ConfigError("RankingModel.set_item_item: the model was built with item_item=False")
        n = self.item_tower.num_items
        if tuple(np.shape(table)) != (n, n):
            raise ConfigError(f"RankingModel.set_item_item: table shape {np.shape(table)}, expected {(n, n)}")
        if (known is None) != (self.item_known is None) or (known is not None and np.shape(known) != (n,)):
            raise ConfigError(
                f"RankingModel.set_item_item: known {None if known is None else np.shape(known)} with "
                f"cold_item_transfer={self.cold_item_transfer}; pass a [{n}] mask exactly when it is on"
            )
        self.item_item_table.assign(np.asarray(table, np.float32))
        self.item_item_weight.assign(float(weight))
        if self.item_known is not None:
            self.item_known.assign(np.asarray(known, np.float32))

    def item_item_scores(self, history: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """[batch, N] ``sum_{h in history, h >= 0} table[h, c]`` of [batch, L] histories, [batch, N] items."""
        if self.item_item_table is None:
            raise ConfigError("RankingModel.item_item_scores: the model was built with item_item=False")
        history = tf.cast(history, tf.int32)
        items = tf.maximum(tf.cast(items, tf.int32), 0)
        # one flat gather of the [batch, L, N] pairs (not of L whole rows of the table)
        flat = tf.maximum(history, 0)[:, :, tf.newaxis] * self.item_tower.num_items + items[:, tf.newaxis, :]
        pairs = tf.gather(tf.reshape(self.item_item_table, [-1]), flat)
        mask = tf.cast(history >= 0, pairs.dtype)[:, :, tf.newaxis]
        return tf.reduce_sum(pairs * mask, axis=1)

    # ------------------------------------------------------------------ the towers

    def embed_items(self, items: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Item-tower vectors of an int tensor of any shape, each distinct item computed once."""
        items = tf.cast(items, tf.int32)
        unique, position = tf.unique(tf.maximum(tf.reshape(items, [-1]), 0))
        embeddings = tf.gather(self.item_tower(unique, training=training), position)
        embeddings = tf.reshape(embeddings, tf.concat([tf.shape(items), [-1]], axis=0))
        embeddings.set_shape(items.shape.concatenate([self.item_tower.embedding_dim]))
        return embeddings

    def user_vector(self, query_features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """[batch, dim] query-tower vector of ``user`` [batch] and ``history`` [batch, L] (-1 padded)."""
        history = tf.cast(query_features["history"], tf.int32)
        return self.query_tower(
            {
                "user": query_features["user"],
                "history": self.embed_items(history, training),
                "history_mask": history >= 0,
            },
            training=training,
        )

    # ------------------------------------------------------------------ scoring

    def score_pairs(
        self,
        user_vector: tf.Tensor,
        item_vectors: tf.Tensor,
        items: tf.Tensor,
        retrieval_scores: tf.Tensor | None = None,
        training: bool | None = None,
        history: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """[batch, N] scores from [batch, dim] users and [batch, N, dim] item vectors.

        ``items`` [batch, N] (catalog indices) gives the category multi-hot;
        ``retrieval_scores`` [batch, N] is required when ``use_retrieval_score`` or
        ``residual_temperature`` > 0; ``history`` [batch, L] (-1 padded) with ``item_item``.
        """
        needs_scores = self.use_retrieval_score or self.residual_temperature > 0.0
        if needs_scores and retrieval_scores is None:
            setting = "use_retrieval_score=True" if self.use_retrieval_score else "residual_temperature > 0"
            raise ConfigError(
                f"RankingModel: {setting} needs the retrieval scores of the candidates "
                "(features['retrieval_score'] or score_candidates(..., retrieval_scores=))"
            )
        n = tf.shape(item_vectors)[1]
        users = tf.tile(user_vector[:, tf.newaxis, :], tf.stack([1, n, 1]))
        parts = [users, item_vectors, users * item_vectors]
        if self.item_tower.use_categories and self.item_tower.num_categories > 0:
            parts.append(tf.gather(self.item_tower.category_table, tf.maximum(items, 0)))
        if self.use_retrieval_score:
            parts.append(tf.cast(retrieval_scores, tf.float32)[..., tf.newaxis])
        x0 = tf.concat(parts, axis=-1)
        width = x0.shape[-1]
        crossed = self.cross_network(tf.reshape(x0, [-1, width]), training=training)
        scores = tf.reshape(self.output_layer(crossed), tf.shape(items))
        if self.residual_temperature > 0.0:
            scores += tf.cast(retrieval_scores, tf.float32) / self.residual_temperature
        if self.item_known is not None:  # a new item: the item-item term alone
            scores *= tf.gather(self.item_known, tf.maximum(items, 0))
        if self.item_item_weight is not None:
            if history is None:
                raise ConfigError("RankingModel: item_item=True needs the users' histories (history=)")
            scores += self.item_item_weight * self.item_item_scores(history, items)
        return scores

    def score_candidates(
        self,
        query_features: Mapping[str, tf.Tensor],
        candidate_ids: tf.Tensor,
        retrieval_scores: tf.Tensor | None = None,
        training: bool | None = None,
    ) -> tf.Tensor:
        """[batch, N] scores of N candidates per user, the user side computed once per user.

        Args:
            query_features: ``user`` [batch] and ``history`` [batch, L] catalog indices.
            candidate_ids: [batch, N] catalog indices (e.g. the retrieval stage's top N), or
                [N] scored for every user.
            retrieval_scores: [batch, N] (or [N]) retrieval scores; needed with
                ``use_retrieval_score``.
            training: Keras training flag.

        Returns:
            [batch, N] scores (ratings for ``rating``, logits otherwise); higher is better.
        """
        user_vector = self.user_vector(query_features, training)
        candidates = tf.cast(candidate_ids, tf.int32)
        batch = tf.shape(user_vector)[0]
        if candidates.shape.rank == 1:
            candidates = tf.tile(candidates[tf.newaxis, :], tf.stack([batch, 1]))
            if retrieval_scores is not None:
                retrieval_scores = tf.tile(tf.reshape(retrieval_scores, [1, -1]), tf.stack([batch, 1]))
        item_vectors = self.embed_items(candidates, training)
        return self.score_pairs(
            user_vector, item_vectors, candidates, retrieval_scores, training, query_features["history"]
        )

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Scores of ``features["item"]``: [batch] -> [batch], [batch, N] -> [batch, N]."""
        items = tf.cast(features["item"], tf.int32)
        single = items.shape.rank == 1
        reads = self.use_retrieval_score or self.residual_temperature > 0.0
        scores = features.get("retrieval_score") if reads else None
        if single:
            items = items[:, tf.newaxis]
            scores = None if scores is None else tf.reshape(scores, [-1, 1])
        out = self.score_candidates(features, items, scores, training)
        return out[:, 0] if single else out

    def ranking_loss(
        self, features: Mapping[str, tf.Tensor], predictions: tf.Tensor, training: bool = False
    ) -> tf.Tensor:
        """The task's loss (and metric update) of ``predictions`` against the batch's labels."""
        if self.objective == "rating":
            labels = tf.cast(features["rating"], tf.float32)
        else:
            labels = tf.cast(features["label"], tf.float32)
        if self.objective == "listwise":
            labels = tf.math.divide_no_nan(labels, tf.reduce_sum(labels, axis=1, keepdims=True))
        return self.task(labels=labels, predictions=predictions, training=training)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.ranking_loss(features, self(features, training=training), training)

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as passed (nested configs as dicts) plus the base fields."""
        return {
            **keras.layers.Layer.get_config(self),
            "item_tower": _plain(self.item_tower_config),
            "query_tower": _plain(self.query_tower_config),
            "cross": _plain(self.cross_config),
            "objective": self.objective,
            "use_retrieval_score": self.use_retrieval_score,
            "output_bias": self.output_bias,
            "residual_temperature": self.residual_temperature,
            **({"item_item": True} if self.item_item else {}),
            **({"cold_item_transfer": True} if self.cold_item_transfer else {}),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> RankingModel:
        """Rebuilds the model (untrained, empty tables) from ``get_config()``; nested dicts copied."""
        config = dict(config)
        nested = {key: dict(config.pop(key)) for key in ("item_tower", "query_tower", "cross")}
        return cls(**nested, **config)
