"""Mean over the valid positions of a padded sequence."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="tfrec_llm")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages ``values`` over the positions where ``mask`` is true.

    Rows with no valid position give zeros (not NaN).

    Example:
        >>> pool = MaskedMeanPooling()
        >>> pool(tf.ones([2, 3, 4]), tf.constant([[True, False, True], [False] * 3])).shape
        TensorShape([2, 4])
    """

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Pools [batch, length, dim] values with a [batch, length] mask into [batch, dim]."""
        weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
        total = tf.reduce_sum(values * weights, axis=-2)
        count = tf.reduce_sum(weights, axis=-2)
        return tf.math.divide_no_nan(total, count)

    def get_config(self) -> dict:
        return dict(super().get_config())
