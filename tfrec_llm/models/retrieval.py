"""Two-tower retrieval model: a ``tfrs.Model`` wiring the towers to ``tfrs.tasks.Retrieval``.

Two training objectives (``tfrec_llm.data.tfdata`` builds the batches of each):

- ``interaction``: one example per interaction, ``user`` [batch], ``history`` [batch,
  history_length] (catalog indices, -1 = padding), ``item`` [batch] (the positive) and
  ``item_probability`` [batch] (its share of TRAIN, for the logQ correction).
- ``next_item``: one example per window of a user's sequence, ``user`` [batch], ``sequence``
  [batch, history_length + 1] (left-padded) and ``sequence_probability``; the query of every
  position t (a history encoder over items <= t) predicts the item at t + 1, all positions in
  one pass, as SASRec trains.

Losses (`models.losses`): ``in_batch`` (``tfrs.tasks.Retrieval`` over the batch's positives,
logQ-corrected), ``full_softmax`` over the catalog (to ~100k items), ``gbce`` (gSASRec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.config.choices import LOSSES, OBJECTIVES
from tfrec_llm.errors import ConfigError
from tfrec_llm.models import replicas
from tfrec_llm.models.future_targets import early_positions_only, future_offsets
from tfrec_llm.models.losses import catalog_softmax_losses, gbce_step_losses
from tfrec_llm.models.query_tower import QueryTower
from tfrec_llm.models.recent_text import USER_TEXT_ITEMS, recent_text_vectors
from tfrec_llm.models.text_adaptors import AlignmentLoss
from tfrec_llm.models.towers import ItemTower

__all__ = ["USER_TEXT_ITEMS", "TwoTowerModel"]


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
        objective: ``interaction`` or ``next_item`` (needs a query tower with a history encoder).
        future_window: ``next_item`` only: in training, each position's target is drawn anew
            at every step, uniformly from the next ``future_window`` items of its window
            (`future_offsets`); 1 = the next item. Evaluation is unchanged.
        future_weight: With ``future_window`` > 1, the loss is ``(1 - w) * next-item loss +
            w * future-window loss`` (both over the same queries); 1 = the future one alone.
        future_context: > 0: only positions whose query has seen at most this many items draw
            future targets; the others keep the next item (`early_positions_only`).
        loss: ``in_batch``, ``full_softmax`` or ``gbce`` (`tfrec_llm.models.losses`), whose
            ``gbce_negatives`` uniform negatives per step and calibration ``gbce_t`` follow.
        text_alignment: > 0: add this weight x ``AlignmentLoss`` (cosine) between the
            projected text and the id embedding of each distinct item of the batch (all warm),
            the id side a stop-gradient target. Needs an item tower with ids and text.
        popularity_prior: beta >= 0 added to the scores as ``beta * log(1 + TRAIN count)``
            (`tfrec_llm.models.scorer.prior_bias`) wherever the model scores the catalog;
            training's loss does not see it.
    """

    def __init__(
        self,
        item_tower: dict[str, Any],
        query_tower: dict[str, Any],
        history_length: int = 50,
        temperature: float = 0.1,
        logq_correction: bool = True,
        remove_accidental_hits: bool = True,
        objective: str = "interaction",
        future_window: int = 1,
        future_weight: float = 1.0,
        future_context: int = 0,
        loss: str = "in_batch",
        gbce_negatives: int = 256,
        gbce_t: float = 0.75,
        text_alignment: float = 0.0,
        popularity_prior: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ConfigError(f"TwoTowerModel: objective must be one of {OBJECTIVES}, got {objective!r}")
        if loss not in LOSSES:
            raise ConfigError(f"TwoTowerModel: loss must be one of {LOSSES}, got {loss!r}")
        self.item_tower_config = dict(item_tower)
        self.query_tower_config = dict(query_tower)
        self.history_length = history_length
        self.temperature = temperature
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        if future_window < 1 or (future_window > 1 and objective != "next_item"):
            raise ConfigError(
                f"TwoTowerModel: future_window must be >= 1, and 1 unless objective='next_item'; "
                f"got {future_window} with objective={objective!r}"
            )
        self.objective = objective
        if not 0.0 <= future_weight <= 1.0:
            raise ConfigError(f"TwoTowerModel: future_weight must be in [0, 1], got {future_weight}")
        if future_context < 0:
            raise ConfigError(f"TwoTowerModel: future_context must be >= 0, got {future_context}")
        self.future_window, self.future_weight = int(future_window), float(future_weight)
        self.future_context = int(future_context)
        self.loss_name = loss
        if gbce_negatives < 1 or not 0.0 <= gbce_t <= 1.0:
            raise ConfigError(
                f"TwoTowerModel: gbce_negatives >= 1 and gbce_t in [0, 1], got {gbce_negatives}, {gbce_t}"
            )
        self.gbce = (int(gbce_negatives), float(gbce_t))
        self.text_alignment = text_alignment
        self.popularity_prior = float(popularity_prior)
        self.item_tower = ItemTower(**self.item_tower_config)
        self.alignment = AlignmentLoss(text_alignment, name="alignment") if text_alignment > 0 else None
        if self.alignment is not None and not (self.item_tower.use_ids and self.item_tower.use_text):
            raise ConfigError(
                "TwoTowerModel: text_alignment > 0 needs an item tower with use_ids and use_text"
            )
        self.query_tower = QueryTower(**self.query_tower_config)
        if objective == "next_item" and self.query_tower.encoder is None:
            raise ConfigError(
                "TwoTowerModel: objective='next_item' needs a query tower with a history encoder "
                "(query_tower['history_encoder'], and use_history=True)"
            )
        self.task = tfrs.tasks.Retrieval(
            temperature=temperature, remove_accidental_hits=remove_accidental_hits, metrics=None
        )
        self.softmax_items: tf.Tensor | None = None
        self.user_text_dim = self.query_tower.user_text_dim
        if self.user_text_dim and (
            self.item_tower._text_width != self.user_text_dim or self.item_tower.text_encoder is not None
        ):
            raise ConfigError(
                f"TwoTowerModel: the query tower's user_text_dim={self.user_text_dim} needs an item "
                "tower with precomputed text vectors of that width (use_text, frozen BERT, "
                f"text_dim={self.user_text_dim}); got text width {self.item_tower._text_width}, "
                f"fine_tune_layers={self.item_tower.fine_tune_layers}"
            )

    def restrict_softmax(self, items: np.ndarray | None) -> None:
        """Makes the full softmax range over ``items`` (catalog indices) only; None: all items.

        The trainer passes the items of the training interactions. An item with none (a cold
        item of protocol B, or one first seen in VALID/TEST) would otherwise only ever be a
        negative, and the text tower would learn to push such items' text down, which is the
        opposite of what a new item needs. Set before ``fit`` (it is traced into the step) and
        not saved: it shapes training only, never scoring.
        """
        if items is None:
            self.softmax_items = None
            return
        mask = np.zeros(self.item_tower.num_items, bool)
        mask[np.asarray(items, np.int64)] = True
        self.softmax_items = tf.constant(mask)

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
        self,
        user: tf.Tensor,
        history: tf.Tensor,
        history_embeddings: tf.Tensor,
        training: bool | None = None,
        user_text: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Query tower on precomputed [batch, length, dim] history embeddings (and user-text vectors)."""
        inputs = {"user": user, "history": history_embeddings, "history_mask": history >= 0}
        if user_text is not None:
            inputs["user_text"] = user_text
        return self.query_tower(inputs, training=training)

    def query_embedding(
        self,
        user: tf.Tensor,
        history: tf.Tensor,
        training: bool | None = None,
        user_text: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """[batch] user indices + [batch, length] item indices (-1 padded) -> [batch, dim].

        ``user_text``: optional [batch, text_dim] BERT vectors of the users' own text (zero rows:
        none), for a query tower with ``user_text_dim``; None = no user gave text.
        """
        history = tf.cast(history, tf.int32)
        return self.query_from_history_embeddings(
            user, history, self.embed_items(history, training), training, user_text
        )

    @tf.function(reduce_retracing=True)
    def inference_query_embedding(
        self, user: tf.Tensor, history: tf.Tensor, user_text: tf.Tensor | None = None
    ) -> tf.Tensor:
        """`query_embedding` in inference mode as one traced graph (this model's own, reused
        as its weights change): run eagerly, a recurrent encoder dispatches every op of every
        step from Python (a GRU over 100 items: 3 s for ML-100K's users, 0.3 s traced)."""
        return self.query_embedding(user, history, training=False, user_text=user_text)

    def recent_titles_text(self, history: tf.Tensor, per_position: bool = False) -> tf.Tensor:
        """The synthetic user text of training (`recent_text_vectors` over the item text table)."""
        return recent_text_vectors(self.item_tower.text_table, history, per_position)

    def candidate_embedding(self, item: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """[batch] catalog indices -> [batch, dim]."""
        return self.item_tower(item, training=training)

    def call(self, features: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.query_embedding(features["user"], features["history"], training=training)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        loss = self._retrieval_loss(features, training)
        if self.alignment is None:
            return loss
        items = features["sequence"] if self.objective == "next_item" else features["item"]
        return loss + self.alignment_loss(items, training)

    def alignment_loss(self, items: tf.Tensor, training: bool = False) -> tf.Tensor:
        """``AlignmentLoss`` over the distinct items (>= 0) of an int tensor of any shape."""
        assert self.alignment is not None
        flat = tf.reshape(tf.cast(items, tf.int32), [-1])
        unique, _ = tf.unique(tf.boolean_mask(flat, flat >= 0))
        tower = self.item_tower
        return self.alignment(tower.text_part(unique, training), tower.id_part(unique))

    def _retrieval_loss(self, features: dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        if self.objective == "next_item":
            return self._next_item_loss(features, training)
        history = tf.cast(features["history"], tf.int32)
        item = tf.cast(features["item"], tf.int32)
        # One item-tower pass over the distinct items of histories and positives together (or
        # over the whole catalog, which the full softmax needs anyway).
        catalog = self._catalog_for_loss(training)
        both = self._embed(tf.concat([history, item[:, tf.newaxis]], axis=1), catalog, training)
        text = self.recent_titles_text(history) if self.user_text_dim else None
        query = self.query_from_history_embeddings(features["user"], history, both[:, :-1], training, text)
        return self._softmax_loss(query, item, both[:, -1], features["item_probability"], catalog)

    def _next_item_loss(self, features: dict[str, tf.Tensor], training: bool) -> tf.Tensor:
        """Every position of each window predicts the next item, in one pass."""
        sequence = tf.cast(features["sequence"], tf.int32)
        inputs = sequence[:, :-1]
        catalog = self._catalog_for_loss(training)
        embedded = self._embed(sequence, catalog, training)
        tower_inputs = {"user": features["user"], "history": embedded[:, :-1], "history_mask": inputs >= 0}
        if self.user_text_dim:
            tower_inputs["user_text"] = self.recent_titles_text(inputs, per_position=True)
        queries = self.query_tower.encode_positions(tower_inputs, training=training)
        # Position t's target sits at sequence[:, t + 1 + offset]; offset 0 is the next item.
        window = self.future_window if training else 1
        args = (sequence, inputs, queries, embedded, features, catalog)
        if window == 1:
            return self._targets_loss(*args, 1)
        future_loss = self._targets_loss(*args, window)  # the only random draw of the loss
        if self.future_weight == 1.0:  # the next-item loss is not computed at all
            return future_loss
        return (1.0 - self.future_weight) * self._targets_loss(*args, 1) + self.future_weight * future_loss

    def _targets_loss(
        self,
        sequence: tf.Tensor,
        inputs: tf.Tensor,
        queries: tf.Tensor,
        embedded: tf.Tensor,
        features: dict[str, tf.Tensor],
        catalog: tf.Tensor | None,
        window: int,
    ) -> tf.Tensor:
        """The softmax loss of every valid position against a target at most ``window`` items ahead."""
        offsets = future_offsets(tf.shape(inputs)[0], tf.shape(inputs)[1], window)
        offsets = early_positions_only(offsets, inputs, self.future_context)
        where = tf.range(tf.shape(inputs)[1])[tf.newaxis, :] + 1 + offsets
        targets = tf.gather(sequence, where, batch_dims=1)
        valid = tf.logical_and(inputs >= 0, targets >= 0)
        return self._softmax_loss(
            tf.boolean_mask(queries, valid),
            tf.boolean_mask(targets, valid),
            tf.boolean_mask(tf.gather(embedded, where, batch_dims=1), valid),
            tf.boolean_mask(tf.gather(features["sequence_probability"], where, batch_dims=1), valid),
            catalog,
        )

    def _catalog_for_loss(self, training: bool) -> tf.Tensor | None:
        """[num_items, dim] embeddings of the whole catalog for the full softmax, else None."""
        if self.loss_name != "full_softmax":
            return None
        return self.item_tower(tf.range(self.item_tower.num_items), training=training)

    def _embed(self, items: tf.Tensor, catalog: tf.Tensor | None, training: bool) -> tf.Tensor:
        """Embeddings of ``items`` (-1 padded): gathered from ``catalog`` when given."""
        if catalog is None:
            return self.embed_items(items, training=training)
        return tf.gather(catalog, tf.maximum(items, 0))

    def _softmax_loss(
        self,
        query: tf.Tensor,
        target: tf.Tensor,
        target_embedding: tf.Tensor,
        target_probability: tf.Tensor,
        catalog: tf.Tensor | None,
    ) -> tf.Tensor:
        """Softmax loss of [n, dim] queries against their [n] target items.

        With ``catalog`` (the full softmax): cross-entropy over every item, averaged over the
        queries. Without: the in-batch softmax of ``tfrs.tasks.Retrieval``, the other targets
        being the negatives. Under a distribution strategy both are the loss of the global
        batch (`tfrec_llm.models.replicas`).
        """
        if self.loss_name == "gbce":
            embed = lambda items: self.item_tower(items, training=True)  # noqa: E731
            settings = (*self.gbce, self.temperature)
            num_items = self.item_tower.num_items
            losses = gbce_step_losses(
                query, target, target_embedding, embed, settings, num_items, self.softmax_items
            )
            return replicas.batch_mean(losses)
        if catalog is not None:
            losses = catalog_softmax_losses(query, catalog, target, self.temperature, self.softmax_items)
            return replicas.batch_mean(losses)
        target_embedding, target, target_probability = replicas.gather_candidates(
            target_embedding, target, target_probability
        )
        kwargs: dict[str, tf.Tensor] = {}
        if self.logq_correction:
            kwargs["candidate_sampling_probability"] = target_probability
        if self.remove_accidental_hits:
            kwargs["candidate_ids"] = target
        return self.task(query, target_embedding, compute_metrics=False, **kwargs)

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
            "objective": self.objective,
            **({"future_window": self.future_window} if self.future_window != 1 else {}),
            **({"future_weight": self.future_weight} if self.future_weight != 1.0 else {}),
            **({"future_context": self.future_context} if self.future_context else {}),
            "loss": self.loss_name,
            **(dict(zip(("gbce_negatives", "gbce_t"), self.gbce)) if self.loss_name == "gbce" else {}),
            **({"text_alignment": self.text_alignment} if self.text_alignment else {}),
            **({"popularity_prior": self.popularity_prior} if self.popularity_prior else {}),
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
