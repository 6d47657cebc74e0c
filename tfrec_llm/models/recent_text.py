"""The synthetic user text of training: a warm user's last few items' text vectors, averaged.

A warm user has written no self-description, so in training the text of the last
``USER_TEXT_ITEMS`` history items stands for one: the L2-normalised mean of their precomputed
BERT vectors (the item tower's text table), a cheap stand-in for encoding their titles joined
into one string (zeros where the history is empty). `TwoTowerModel.recent_titles_text` uses it.
"""

from __future__ import annotations

import tensorflow as tf

USER_TEXT_ITEMS = 5
"""Recent items whose text stands for a warm user's own text in training."""


def recent_text_vectors(text_table: tf.Tensor, history: tf.Tensor, per_position: bool = False) -> tf.Tensor:
    """The mean text vector of the last ``USER_TEXT_ITEMS`` items, L2-normalised.

    Args:
        text_table: [num_items, text_dim] item text vectors.
        history: [batch, L] catalog indices, left-padded with -1.
        per_position: Return [batch, L, text_dim], position t averaging the items at
            (t - USER_TEXT_ITEMS, t] (the next-item objective); else [batch, text_dim].
    """
    history = tf.cast(history, tf.int32)
    mask = tf.cast(history >= 0, tf.float32)[..., tf.newaxis]
    vectors = tf.gather(text_table, tf.maximum(history, 0)) * mask
    if not per_position:
        return tf.math.l2_normalize(tf.reduce_sum(vectors[:, -USER_TEXT_ITEMS:], axis=1), axis=-1)
    total = tf.cumsum(vectors, axis=1)
    before = tf.pad(total, [[0, 0], [USER_TEXT_ITEMS, 0], [0, 0]])[:, : tf.shape(total)[1]]
    return tf.math.l2_normalize(total - before, axis=-1)
