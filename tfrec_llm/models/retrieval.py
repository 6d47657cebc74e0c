"""Two-tower retrieval model: a ``tfrs.Model`` wiring the towers to ``tfrs.tasks.Retrieval``.

Training batches are dicts of integer tensors (``tfrec_llm.data.tfdata``):
``user`` [batch], ``history`` [batch, history_length] (catalog indices, -1 = padding),
``item`` [batch] (the positive) and ``item_probability`` [batch] (its share of TRAIN, for the
logQ correction). The loss is the in-batch sampled softmax of TFRS with temperature,
logQ correction and accidental-hit removal, each switchable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.models.towers import ItemTower, QueryTower


def _plain(value: Any) -> Any:
    """``value`` with Keras' tracking wrappers (``_DictWrapper``, ``ListWrapper``) made plain.

    Keras wraps dicts and lists assigned to a model's attributes; the config must hold plain
    ``dict``/``list`` values (JSON, equality with the arguments passed).
    """
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


@keras.utils.register_keras_serializable(package="tfrec_llm")
class TwoTowerModel(tfrs.Model):
    """Query tower (user id, profile, pooled history) x candidate tower (id, BERT text, categories).

    The user's history is embedded with the candidate tower itself, so the text of the items a
    user watched shapes the query as much as the text of the item being scored.

    Args:
        item_tower: ``ItemTower`` config dict.
        query_tower: ``QueryTower`` config dict.
        history_length: Recent items the query sees.
        temperature: Logit divisor of the in-batch softmax.
        logq_correction: Subtract log sampling probability of each in-batch candidate.
        remove_accidental_hits: Mask in-batch negatives equal to the positive.
    """

    def __init__(
        self,
        item_tower: dict[str, Any],
        query_tower: dict[str, Any],
        history_length: int = 50,
        temperature: float = 0.1,
        logq_correction: bool = True,
        remove_accidental_hits: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.item_tower_config = dict(item_tower)
        self.query_tower_config = dict(query_tower)
        self.history_length = history_length
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        self.item_tower = ItemTower(**self.item_tower_config)
        self.query_tower = QueryTower(**self.query_tower_config)
        self.task = tfrs.tasks.Retrieval(
            temperature=temperature, remove_accidental_hits=remove_accidental_hits, metrics=None
        )

    def embed_items(self, items: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Item-tower embeddings of an int tensor of any shape, each distinct item computed once.

        A batch of 512 histories of 50 items holds at most a few thousand distinct items, so
        running the tower on ``tf.unique`` of them and gathering is far cheaper than running it
        on every position (padding, -1, maps to item 0 and must be masked by the caller). With a
        fine-tuned text tower this also means BERT runs once per distinct item per step.
        """
        items = tf.cast(items, tf.int32)
        unique, position = tf.unique(tf.maximum(tf.reshape(items, [-1]), 0))
        embeddings = tf.gather(self.item_tower(unique, training=training), position)
        return tf.reshape(embeddings, tf.concat([tf.shape(items), [-1]], axis=0))

    def query_from_history_embeddings(
        self, user: tf.Tensor, history: tf.Tensor, history_embeddings: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        """Query tower on precomputed [batch, length, dim] history embeddings."""
        return self.query_tower(
            {"user": user, "history": history_embeddings, "history_mask": history >= 0}, training=training
        )

    def query_embedding(self, user: tf.Tensor, history: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[batch] user indices + [batch, length] item indices (-1 padded) -> [batch, dim]."""
        history = tf.cast(history, tf.int32)
        return self.query_from_history_embeddings(
            user, history, self.embed_items(history, training), training
        )

    def candidate_embedding(self, item: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[batch] catalog indices -> [batch, dim]."""
        return self.item_tower(item, training=training)

    def call(self, features: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.query_embedding(features["user"], features["history"], training=training)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        history = tf.cast(features["history"], tf.int32)
        item = tf.cast(features["item"], tf.int32)
        # One item-tower pass over the distinct items of histories and positives together.
        both = self.embed_items(tf.concat([history, item[:, tf.newaxis]], axis=1), training=training)
        query = self.query_from_history_embeddings(features["user"], history, both[:, :-1], training=training)
        candidate = both[:, -1]
        kwargs: dict[str, tf.Tensor] = {}
        if self.logq_correction:
            kwargs["candidate_sampling_probability"] = features["item_probability"]
        if self.remove_accidental_hits:
            kwargs["candidate_ids"] = features["item"]
        return self.task(query, candidate, compute_metrics=False, **kwargs)

    def all_candidate_embeddings(self, batch_size: int = 4096) -> np.ndarray:
        """[num_items, dim] embeddings of the whole catalog, in catalog order."""
        n = self.item_tower.num_items
        return np.concatenate(
            [self.item_tower(tf.range(i, min(i + batch_size, n))).numpy() for i in range(0, n, batch_size)]
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments as passed (tower configs as dicts) plus the base fields."""
        # keras.Model.get_config returns {} for a subclassed model; Layer's has the base fields.
        return {
            **keras.layers.Layer.get_config(self),
            "item_tower": _plain(self.item_tower_config),
            "query_tower": _plain(self.query_tower_config),
            "history_length": self.history_length,
            "temperature": self.temperature,
            "logq_correction": self.logq_correction,
            "remove_accidental_hits": self.remove_accidental_hits,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> TwoTowerModel:
        """Rebuilds the model (towers included, untrained) from ``get_config()``.

        The nested tower configs are copied, so the new model never shares a dict with
        ``config``.
        """
        config = dict(config)
        item_tower = dict(config.pop("item_tower"))
        query_tower = dict(config.pop("query_tower"))
        return cls(item_tower=item_tower, query_tower=query_tower, **config)
