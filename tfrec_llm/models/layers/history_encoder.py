"""The contract shared by the history encoders, and the masking helpers they are built on.

A history is ``[batch, L]`` catalog indices LEFT-padded with -1 (the most recent item is the
last column, ``tfrec_llm.data.catalog.Catalog.pad_histories``); the towers embed it into
``sequence [batch, L, d]`` with ``mask [batch, L]`` (True = real item). A history encoder maps
these to ``[batch, L, units]`` where position t depends only on the real items at positions
<= t (causal) and never on what the padded positions hold; padded positions output zeros.
``last_position`` then picks the query vector: the output at the last real position.

The encoders subclass ``HistoryEncoder`` (not registered: the base is the identity, a
building block) and override ``encode``; the argument checks below give every encoder the same error wording.
"""

from __future__ import annotations

import numbers
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError


def zero_padding(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Sets the padded positions of ``values [batch, L, ...]`` to zero.

    Args:
        values: float ``[batch, L, ...]``.
        mask: ``[batch, L]``, bool or 0/1 (True = real item).

    Returns:
        ``values`` with every position where ``mask`` is false replaced by zeros.
    """
    mask = tf.cast(mask, tf.bool)
    extra = tf.ones([tf.rank(values) - 2], tf.int32)
    shape = tf.concat([tf.shape(mask), extra], axis=0)
    return tf.where(tf.reshape(mask, shape), values, tf.zeros_like(values))


def last_position(outputs: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The outputs at the last real position of each row: the query vector of a history.

    Works for any mask (left padding or holes): it picks the highest position where ``mask``
    is set. Rows without any real position give zeros.

    Args:
        outputs: ``[batch, L, ...]`` (e.g. ``[batch, L, units]`` encoder outputs).
        mask: ``[batch, L]``, bool or 0/1 (True = real item).

    Returns:
        ``[batch, ...]``: ``outputs[b, last_real(b)]``, zeros where row b is empty.
    """
    mask = tf.cast(mask, tf.bool)
    positions = tf.range(tf.shape(mask)[1])[tf.newaxis, :]
    last = tf.reduce_max(tf.where(mask, positions, -1), axis=1)  # [batch], -1 = empty row
    picked = tf.gather(outputs, tf.maximum(last, 0), axis=1, batch_dims=1)
    return zero_padding(picked[:, tf.newaxis], (last >= 0)[:, tf.newaxis])[:, 0]


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` as an int if it is a positive integer; ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ConfigError(f"{owner}: {name} must be a positive integer, got {name}={value!r}")
    return int(value)


def check_rate(owner: str, name: str, value: Any) -> float:
    """``value`` as a float if it is a number in [0, 1); ConfigError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{owner}: {name} must be a number in [0, 1), got {name}={value!r}")
    return float(value)


class HistoryEncoder(keras.layers.Layer):  # type: ignore[misc]
    """Base class: causal ``[batch, L, d]`` -> ``[batch, L, units]`` with zeros at padding.

    ``call`` zeroes the padded input steps, runs ``encode`` and zeroes the padded output steps,
    so an encoder only has to be causal and treat a zero step like padding would be treated
    (e.g. by masking or by depending only on the mask, never on the padded values).
    """

    def call(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Encodes a left-padded history.

        Args:
            sequence: float ``[batch, L, d]`` item embeddings.
            mask: ``[batch, L]`` bool (True = real item).
            training: Whether dropout is active.

        Returns:
            ``[batch, L, units]``; position t depends only on the real items at positions <= t;
            padded positions are zeros.
        """
        mask = tf.cast(mask, tf.bool)
        outputs = self.encode(zero_padding(sequence, mask), mask, training)
        return zero_padding(outputs, mask)

    def encode(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool | None) -> tf.Tensor:
        """The encoder's computation on a zero-padded ``sequence``; subclasses override it.

        The base computation is the identity: each position's output is its own item, so the
        query of a history is its last item (causal and padding-free by construction).
        """
        del mask, training
        return sequence

    def pool_last(self, outputs: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """``last_position(outputs, mask)``: the ``[batch, units]`` query vector."""
        return last_position(outputs, mask)
