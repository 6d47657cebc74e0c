"""Mean over the valid positions of a padded sequence: the math and its Keras layer.

One implementation for the whole package: ``TextEncoder`` pools BERT's hidden states with
``masked_mean`` (the sentence-transformers mean pooling) and the query tower pools its history
with ``MaskedMeanPooling`` (re-exported by ``tfrec_llm.models.layers``). It lives in ``text``
because ``text`` sits below ``models`` in the import order.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras


def masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Averages ``values [batch, length, dim]`` over the positions where ``mask`` is set.

    ``mask`` may be bool or numeric (1 = valid, 0 = padding). Rows without any valid position
    give zeros (not NaN). Padded positions never change the result, as long as their values
    are finite (they are multiplied by 0).

    Args:
        values: float ``[batch, length, dim]``.
        mask: ``[batch, length]``, bool or 0/1.

    Returns:
        ``[batch, dim]`` in the dtype of ``values``.
    """
    weights = tf.cast(mask, values.dtype)[..., tf.newaxis]
    total = tf.reduce_sum(values * weights, axis=-2)
    count = tf.reduce_sum(weights, axis=-2)
    return tf.math.divide_no_nan(total, count)


@keras.utils.register_keras_serializable(package="tfrec_llm")
class MaskedMeanPooling(keras.layers.Layer):  # type: ignore[misc]
    """Averages ``values`` over the positions where ``mask`` is true (see ``masked_mean``).

    Rows with no valid position give zeros (not NaN). The layer has no weights and no
    arguments of its own; ``**kwargs`` are the base Layer arguments (``name``, ``trainable``,
    ``dtype``).

    Example:
        >>> pool = MaskedMeanPooling()
        >>> pool(tf.ones([2, 3, 4]), tf.constant([[True, False, True], [False] * 3])).shape
        TensorShape([2, 4])
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def call(self, values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Pools [batch, length, dim] values with a [batch, length] mask into [batch, dim]."""
        return masked_mean(values, mask)

    def get_config(self) -> dict[str, Any]:
        """The base Layer fields (``name``, ``trainable``, ``dtype``): the layer has no others."""
        config: dict[str, Any] = super().get_config()
        return config
