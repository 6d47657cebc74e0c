"""Retrieval and ranking in one ``tfrs.Model``: two tasks on shared towers (TFRS multitask recipe).

The ranking model's item and query towers are the retrieval towers too: the retrieval loss
(``tfrs.tasks.Retrieval``, in-batch softmax over the L2-normalised tower vectors of the batch's
positive pairs) and the ranking loss (the ranking model's ``tfrs.tasks.Ranking``) train the same
embeddings, and the total is ``retrieval_weight * retrieval + ranking_weight * ranking``.

Which pairs are the retrieval positives follows the ranking objective: every rated pair
(``rating``, as in the TFRS multitask tutorial, where a rating is a watch), the clicked pairs
(``ctr``, label 1) or the chosen candidate of each list (``listwise``, highest label).
With ``use_retrieval_score`` the ranking model reads the pair's retrieval score (the cosine of
the two tower vectors) from the shared towers, so no outside score is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.ranking import RankingModel
from tfrec_llm.models.retrieval import _plain


@keras.utils.register_keras_serializable(package="tfrec_llm")
class MultitaskModel(tfrs.Model):
    """A ``RankingModel`` whose towers also train a retrieval task; loss = weighted sum of both.

    Args:
        ranking: ``RankingModel`` config dict (towers, cross network, objective).
        retrieval_weight: Weight of the retrieval loss.
        ranking_weight: Weight of the ranking loss.
        temperature: Logit divisor of the in-batch retrieval softmax.
        remove_accidental_hits: Mask in-batch negatives equal to the positive.

    Example:
        >>> model = MultitaskModel(ranking={...}, retrieval_weight=1.0, ranking_weight=0.5)
        >>> model.compile(keras.optimizers.Adam(1e-3)); model.fit(rating_batches)
    """

    def __init__(
        self,
        ranking: Mapping[str, Any],
        retrieval_weight: float = 1.0,
        ranking_weight: float = 1.0,
        temperature: float = 0.1,
        remove_accidental_hits: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if retrieval_weight < 0 or ranking_weight < 0 or retrieval_weight + ranking_weight <= 0:
            raise ConfigError(
                f"MultitaskModel: retrieval_weight={retrieval_weight}, ranking_weight={ranking_weight}; "
                "expected weights >= 0 with a positive sum"
            )
        self.ranking_config = dict(ranking)
        self.retrieval_weight = float(retrieval_weight)
        self.ranking_weight = float(ranking_weight)
        self.temperature = float(temperature)
        self.remove_accidental_hits = bool(remove_accidental_hits)
        self.ranking = RankingModel(**self.ranking_config)
        self.retrieval_task = tfrs.tasks.Retrieval(
            temperature=self.temperature, remove_accidental_hits=self.remove_accidental_hits, metrics=None
        )

    def query_embedding(self, user: tf.Tensor, history: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[batch] users + [batch, L] histories -> [batch, dim] L2-normalised retrieval queries."""
        vector = self.ranking.user_vector({"user": user, "history": history}, training)
        return tf.math.l2_normalize(vector, axis=-1)

    def candidate_embedding(self, item: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Catalog indices (any shape) -> L2-normalised retrieval candidate vectors."""
        return tf.math.l2_normalize(self.ranking.embed_items(item, training), axis=-1)

    def _forward(
        self, features: Mapping[str, tf.Tensor], training: bool | None
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """(user vectors [b, d], item vectors [b, N, d], items [b, N], ranking scores [b, N])."""
        items = tf.cast(features["item"], tf.int32)
        if items.shape.rank == 1:
            items = items[:, tf.newaxis]
        user_vector = self.ranking.user_vector(features, training)
        item_vectors = self.ranking.embed_items(items, training)
        scores = None
        if self.ranking.use_retrieval_score:
            query = tf.math.l2_normalize(user_vector, axis=-1)[:, tf.newaxis, :]
            scores = tf.reduce_sum(query * tf.math.l2_normalize(item_vectors, axis=-1), axis=-1)
        predictions = self.ranking.score_pairs(
            user_vector, item_vectors, items, scores, training, features.get("history")
        )
        return user_vector, item_vectors, items, predictions

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Ranking scores of ``features["item"]`` ([batch] -> [batch], [batch, N] -> [batch, N])."""
        predictions = self._forward(features, training)[-1]
        return predictions[:, 0] if len(features["item"].shape) == 1 else predictions

    def task_losses(self, features: Mapping[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """The two unweighted losses of a batch: ``{"retrieval": ..., "ranking": ...}``."""
        user_vector, item_vectors, items, predictions = self._forward(features, training)
        objective = self.ranking.objective
        if objective == "listwise":
            chosen = tf.argmax(tf.cast(features["label"], tf.float32), axis=1, output_type=tf.int32)
            positive_items = tf.gather(items, chosen, batch_dims=1)
            positive_vectors = tf.gather(item_vectors, chosen, batch_dims=1)
            users = user_vector
        else:
            positive_items, positive_vectors, users = items[:, 0], item_vectors[:, 0], user_vector
            if objective == "ctr":
                clicked = tf.cast(features["label"], tf.float32) > 0.5
                positive_items = tf.boolean_mask(positive_items, clicked)
                positive_vectors = tf.boolean_mask(positive_vectors, clicked)
                users = tf.boolean_mask(users, clicked)
        retrieval = self.retrieval_task(
            tf.math.l2_normalize(users, axis=-1),
            tf.math.l2_normalize(positive_vectors, axis=-1),
            compute_metrics=False,
            **({"candidate_ids": positive_items} if self.remove_accidental_hits else {}),
        )
        if len(features["item"].shape) == 1:
            predictions = predictions[:, 0]
        ranking = self.ranking.ranking_loss(features, predictions, training)
        return {"retrieval": retrieval, "ranking": ranking}

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        losses = self.task_losses(features, training)
        return self.retrieval_weight * losses["retrieval"] + self.ranking_weight * losses["ranking"]

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (the ranking config as a dict) plus the base fields."""
        return {
            **keras.layers.Layer.get_config(self),
            "ranking": _plain(self.ranking_config),
            "retrieval_weight": self.retrieval_weight,
            "ranking_weight": self.ranking_weight,
            "temperature": self.temperature,
            "remove_accidental_hits": self.remove_accidental_hits,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> MultitaskModel:
        """Rebuilds the model (untrained, empty tables) from ``get_config()``."""
        config = dict(config)
        ranking = {key: _plain(value) for key, value in dict(config.pop("ranking")).items()}
        return cls(ranking=ranking, **config)
