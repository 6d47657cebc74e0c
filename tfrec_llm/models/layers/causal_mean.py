"""Cumulative masked mean of a history: the causal form of today's mean pooling."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfrec_llm.models.layers.history_encoder import HistoryEncoder


@keras.utils.register_keras_serializable(package="tfrec_llm")
class CumulativeMeanEncoder(HistoryEncoder):
    """Position t = mean of the real items at positions <= t (zeros before the first one).

    At the last real position this is ``MaskedMeanPooling`` of the whole history, so
    ``pool_last`` reproduces the query tower's mean pooling. No weights and no arguments of
    its own; ``**kwargs`` are the base Layer arguments (``name``, ``trainable``, ``dtype``).
    ``units`` = d (the input width).

    Example:
        >>> encoder = CumulativeMeanEncoder()
        >>> out = encoder(tf.constant([[[0.0], [2.0], [4.0]]]), tf.constant([[False, True, True]]))
        >>> out[0, :, 0].numpy().tolist()
        [0.0, 2.0, 3.0]
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def encode(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool | None) -> tf.Tensor:
        """Cumulative sums of the zero-padded steps over cumulative counts of real steps."""
        counts = tf.cumsum(tf.cast(mask, sequence.dtype), axis=1)[..., tf.newaxis]
        return tf.math.divide_no_nan(tf.cumsum(sequence, axis=1), counts)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """``[batch, L, d]``: the input shape."""
        return tf.TensorShape(input_shape)

    def get_config(self) -> dict[str, Any]:
        """The base Layer fields (``name``, ``trainable``, ``dtype``): the layer has no others."""
        config: dict[str, Any] = super().get_config()
        return config
