"""Training targets further ahead than the next item (``model.future_window``).

PinnerFormer's dense all-action loss: each position of a next-item window is trained on an item
drawn from its next ``window`` items instead of the very next one, so the query learns the
user's lasting taste. `tfrec_llm.models.retrieval.TwoTowerModel` draws the offsets anew at every
training step.
"""

from __future__ import annotations

import tensorflow as tf


def future_offsets(batch: tf.Tensor, length: tf.Tensor, window: int) -> tf.Tensor:
    """[batch, length] int32 offsets of each position's target past the next item.

    Position t of a window of ``length`` inputs may look ``min(window, length - t)`` items
    ahead; its offset is drawn uniformly from ``0 .. that - 1`` (all zeros for ``window`` 1).
    Windows are left-padded, so every item after a real input is real too.
    """
    if window == 1:
        return tf.zeros([batch, length], tf.int32)
    reach = tf.minimum(window, length - tf.range(length))
    draw = tf.random.uniform([batch, length])
    return tf.minimum(tf.cast(draw * tf.cast(reach, tf.float32), tf.int32), reach - 1)


def early_positions_only(offsets: tf.Tensor, inputs: tf.Tensor, context: int) -> tf.Tensor:
    """``offsets`` where the position's query has seen at most ``context`` items, else 0.

    A window's position t has seen the real (>= 0) inputs up to t; with ``context`` > 0 only
    such short-context positions (a new user's first items) look further ahead, and every
    other position keeps the next item. ``context`` 0 keeps ``offsets`` everywhere.
    """
    if context == 0:
        return offsets
    seen = tf.cumsum(tf.cast(inputs >= 0, tf.int32), axis=1)
    return tf.where(seen <= context, offsets, tf.zeros_like(offsets))
