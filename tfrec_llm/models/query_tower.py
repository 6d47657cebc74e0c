"""The query tower: a user (id, profile) and the items they interacted with, in order.

The history arrives already embedded by the candidate tower (``[batch, L, d]`` plus a
``[batch, L]`` mask, LEFT-padded: the most recent item is the last column). A history encoder
(``tfrec_llm.models.layers.history_encoders``) turns it into one vector per position; without
one, the history is mean-pooled (the original query tower, whose checkpoints stay valid).

Stages, in order: user tables -> id and profile embeddings -> history encoder -> concat ->
MLP head -> L2 normalise. ``call`` returns the query of the last position; ``encode_positions``
returns the query of every position, for the next-item objective.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers import MaskedMeanPooling, build_history_encoder, last_position
from tfrec_llm.models.layers.history_encoder import check_rate, zero_padding
from tfrec_llm.models.towers import id_regularizer


@keras.utils.register_keras_serializable(package="tfrec_llm")
class QueryTower(keras.Model):
    """Maps a user (index + recent item embeddings) to a [batch, embedding_dim] query (L2-normalised by default).

    Inputs (a dict): ``user`` [batch] int user index (``num_users`` = unknown user);
    ``history`` [batch, length, embedding_dim] item-tower embeddings of the recent items;
    ``history_mask`` [batch, length] bool.

    Args:
        num_users: Users with a row in the tables (the unknown-user row is added on top).
        user_vocab_size: Id embedding rows (OOV bucket included).
        profile_sizes: Vocabulary size of each categorical profile field.
        embedding_dim: Output width.
        use_ids: Use the user id embedding.
        use_profile: Use the profile fields.
        use_history: Use the history.
        l2: L2 penalty on the id embedding.
        history_encoder: None = mean pooling of the history (the original tower); else
            ``{"name": <one of HISTORY_ENCODERS>, **its constructor arguments}``, a causal
            encoder whose output at the last real position is the history's part of the query.
        user_dropout: Training-time probability of replacing a user by the unknown user (id
            and profile both), so that row is trained and the history alone must carry the query.
        normalize: L2-normalise the query (cosine scores, with a normalising item tower).
        user_text_dim: Width of the optional user-text vector (0 = no text path). With it, the
            inputs may hold ``user_text`` [batch, user_text_dim]: a BERT embedding of the user's
            own words (a self-description, or a few titles), the same BERT as the item texts;
            an all-zero row means "no text" and adds nothing (``text_part``).
        user_text_dropout: Training-time probability of hiding a row's user text.
        user_text_history_dropout: Training-time probability of hiding the history (id and
            profile stay) of a row whose text is kept, so the text alone must carry a query,
            as for a new user who only describes themselves.

    Example:
        >>> tower = QueryTower(num_users=2, user_vocab_size=3, embedding_dim=8,
        ...                    history_encoder={"name": "gru", "units": 8})
        >>> inputs = {"user": tf.constant([0, 2]), "history": tf.ones([2, 5, 8]),
        ...           "history_mask": tf.ones([2, 5], bool)}
        >>> tower(inputs).shape, tower.encode_positions(inputs).shape
        (TensorShape([2, 8]), TensorShape([2, 5, 8]))
    """

    def __init__(
        self,
        num_users: int,
        user_vocab_size: int,
        profile_sizes: tuple[int, ...] | list[int] = (),
        embedding_dim: int = 64,
        use_ids: bool = True,
        use_profile: bool = True,
        use_history: bool = True,
        l2: float = 0.0,
        history_encoder: Mapping[str, Any] | None = None,
        user_dropout: float = 0.0,
        normalize: bool = True,
        user_text_dim: int = 0,
        user_text_dropout: float = 0.5,
        user_text_history_dropout: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        profile_sizes = tuple(int(s) for s in profile_sizes)
        # The profile is skipped when the data set has no profile fields (use_profile is kept
        # as passed, for get_config).
        with_profile = use_profile and bool(profile_sizes)
        if not (use_ids or with_profile or use_history or user_text_dim > 0):
            raise ConfigError("QueryTower: use_ids, use_profile and use_history are all false")
        self._with_profile = with_profile
        self.num_users = num_users
        self.user_vocab_size = user_vocab_size
        self.profile_sizes = profile_sizes
        self.embedding_dim = embedding_dim
        self.use_ids = use_ids
        self.use_profile = use_profile
        self.use_history = use_history
        self.l2 = l2
        self.history_encoder_config = None if history_encoder is None else dict(history_encoder)
        self.user_dropout = check_rate("QueryTower", "user_dropout", user_dropout)
        self.normalize = normalize
        self.user_text_dim = int(user_text_dim)
        self.user_text_dropout = check_rate("QueryTower", "user_text_dropout", user_text_dropout)
        self.user_text_history_dropout = check_rate(
            "QueryTower", "user_text_history_dropout", user_text_history_dropout
        )

        self.id_index = tf.Variable(tf.zeros([num_users + 1], tf.int32), trainable=False, name="id_index")
        self.id_embedding = (
            keras.layers.Embedding(
                user_vocab_size,
                embedding_dim,
                embeddings_regularizer=id_regularizer(l2),
                name="user_id_embedding",
            )
            if use_ids
            else None
        )
        self.profile_table = tf.Variable(
            tf.zeros([num_users + 1, max(len(profile_sizes), 1)], tf.int32),
            trainable=False,
            name="profile_table",
        )
        self.profile_embeddings = [
            keras.layers.Embedding(size, 16, name=f"profile_embedding_{i}")
            for i, size in enumerate(profile_sizes if with_profile else ())
        ]
        self.pool = MaskedMeanPooling()
        self.encoder = None
        if use_history and self.history_encoder_config is not None:
            encoder_args = dict(self.history_encoder_config)
            if "name" not in encoder_args:
                raise ConfigError(f"QueryTower: history_encoder needs a 'name', got {encoder_args}")
            self.encoder = build_history_encoder(
                encoder_args.pop("name"), name="history_encoder", **encoder_args
            )
        self.mlp = keras.Sequential(
            [keras.layers.Dense(2 * embedding_dim, activation="gelu"), keras.layers.Dense(embedding_dim)],
            name="query_mlp",
        )
        self.text_projection = (
            keras.Sequential(
                [keras.layers.Dense(2 * embedding_dim, activation="gelu"), keras.layers.Dense(embedding_dim)],
                name="user_text_projection",
            )
            if self.user_text_dim
            else None
        )

    def set_tables(self, id_index: np.ndarray, profile: np.ndarray | None = None) -> None:
        """Loads the per-user lookup tables (user-index order, unknown-user row last)."""
        self.id_index.assign(np.asarray(id_index, np.int32))
        if self._with_profile and profile is not None:
            self.profile_table.assign(np.asarray(profile, np.int32))

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        parts = self._user_parts(inputs["user"], training)
        text, keep_history = self._text_and_history_keep(inputs, training)
        if self.use_history:
            if self.encoder is None:
                history = self.pool(inputs["history"], inputs["history_mask"])
            else:
                outputs = self.encoder(inputs["history"], inputs["history_mask"], training=training)
                history = last_position(outputs, inputs["history_mask"])
            parts.append(history * keep_history[:, tf.newaxis])
        if self.text_projection is not None:
            parts.append(self.text_part(text))
        return self._output(self.mlp(tf.concat(parts, axis=-1)))

    def text_part(self, text: tf.Tensor) -> tf.Tensor:
        """[batch, embedding_dim] projection of the user-text vectors; zeros for all-zero rows (no text)."""
        given = tf.reduce_any(tf.not_equal(text, 0.0), axis=-1, keepdims=True)
        return tf.where(given, self.text_projection(text), 0.0)

    def _text_and_history_keep(
        self, inputs: dict[str, tf.Tensor], training: bool | None
    ) -> tuple[tf.Tensor | None, tf.Tensor]:
        """The user-text input (zeros when absent) after dropout, and [batch] 1/0: keep the history.

        In training a row's text is hidden with ``user_text_dropout``; a row whose text is kept
        loses its history with ``user_text_history_dropout``. Outside training nothing changes.
        """
        batch = tf.shape(inputs["user"])[0]
        keep_history = tf.ones([batch])
        if self.text_projection is None:
            return None, keep_history
        text = inputs.get("user_text")
        text = tf.zeros([batch, self.user_text_dim]) if text is None else tf.cast(text, tf.float32)
        if training:
            shown = tf.random.uniform([batch]) >= self.user_text_dropout
            extra = [1] * (text.shape.rank - 1)  # text is [batch, dim] or [batch, L, dim]
            text = text * tf.reshape(tf.cast(shown, tf.float32), [-1, *extra])
            given = tf.reduce_any(tf.not_equal(tf.reshape(text, [batch, -1]), 0.0), axis=1)
            hide = tf.logical_and(given, tf.random.uniform([batch]) < self.user_text_history_dropout)
            keep_history = 1.0 - tf.cast(hide, tf.float32)
        return text, keep_history

    def encode_positions(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """[batch, L, embedding_dim] queries: position t sees the user and the items at <= t.

        Position t's query equals ``call`` on the history cut after t (the encoders are
        causal); padded positions are zeros. Needs a history encoder.

        Raises:
            ConfigError: The tower mean-pools its history (no ``history_encoder``).
        """
        if self.encoder is None:
            raise ConfigError(
                "QueryTower.encode_positions needs a history encoder; this tower mean-pools its "
                "history (history_encoder=None, or use_history=False)"
            )
        mask = tf.cast(inputs["history_mask"], tf.bool)
        outputs = self.encoder(inputs["history"], mask, training=training)
        length = tf.shape(outputs)[1]
        user_parts = self._user_parts(inputs["user"], training)
        text, keep_history = self._text_and_history_keep(inputs, training)
        if text is not None:
            # user_text may be [batch, L, dim] (a text per position) or [batch, dim]
            if text.shape.rank == 2:
                text = tf.tile(text[:, tf.newaxis, :], tf.stack([1, length, 1]))
        parts = [tf.tile(part[:, tf.newaxis, :], tf.stack([1, length, 1])) for part in user_parts]
        parts.append(outputs * keep_history[:, tf.newaxis, tf.newaxis])
        if text is not None:
            parts.append(self.text_part(text))
        queries = self.mlp(tf.concat(parts, axis=-1))
        return zero_padding(self._output(queries), mask)

    def history_weights(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """[batch, L] how much each history item weighs in the query (rows sum to 1, 0 at padding).

        The attention encoder gives its last block's attention of the last real position,
        averaged over heads; every other encoder weighs the real items equally.
        """
        mask = tf.cast(inputs["history_mask"], tf.bool)
        if self.encoder is not None and hasattr(self.encoder, "num_heads"):
            _, weights = self.encoder(inputs["history"], mask, return_attention=True)
            return tf.reduce_mean(weights, axis=1)
        counts = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
        return tf.math.divide_no_nan(tf.cast(mask, tf.float32), counts)

    def _output(self, queries: tf.Tensor) -> tf.Tensor:
        """The head's output, L2-normalised unless ``normalize`` is off."""
        return tf.math.l2_normalize(queries, axis=-1) if self.normalize else queries

    def _user_parts(self, user: tf.Tensor, training: bool | None) -> list[tf.Tensor]:
        """[batch, width] id and profile embeddings of the users (the unknown row when dropped)."""
        user = tf.clip_by_value(tf.cast(user, tf.int32), 0, self.num_users)
        if training and self.user_dropout > 0:
            drop = tf.random.uniform(tf.shape(user)) < self.user_dropout
            user = tf.where(drop, tf.fill(tf.shape(user), self.num_users), user)
        parts = []
        if self.use_ids:
            parts.append(self.id_embedding(tf.gather(self.id_index, user)))
        if self._with_profile:
            profile = tf.gather(self.profile_table, user)
            parts.extend(emb(profile[:, i]) for i, emb in enumerate(self.profile_embeddings))
        return parts

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (``profile_sizes`` as a list of ints) plus the base fields."""
        config = {
            **keras.layers.Layer.get_config(self),
            "num_users": self.num_users,
            "user_vocab_size": self.user_vocab_size,
            "profile_sizes": list(self.profile_sizes),
            "embedding_dim": self.embedding_dim,
            "use_ids": self.use_ids,
            "use_profile": self.use_profile,
            "use_history": self.use_history,
            "l2": self.l2,
        }
        # Only when set, so the configs of mean-pooling towers stay as they were.
        if self.history_encoder_config is not None:
            config["history_encoder"] = {
                key: list(value) if isinstance(value, (list, tuple)) else value
                for key, value in self.history_encoder_config.items()
            }
        if self.user_dropout:
            config["user_dropout"] = self.user_dropout
        if not self.normalize:
            config["normalize"] = False
        if self.user_text_dim:
            config["user_text_dim"] = self.user_text_dim
            config["user_text_dropout"] = self.user_text_dropout
            config["user_text_history_dropout"] = self.user_text_history_dropout
        return config
