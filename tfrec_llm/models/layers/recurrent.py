"""Unidirectional GRU and LSTM history encoders that ignore left padding."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfrec_llm.models.layers.history_encoder import HistoryEncoder, check_positive_int, check_rate


class RecurrentEncoder(HistoryEncoder):
    """Base of the recurrent encoders: one Keras RNN over the history, driven by the mask.

    The mask goes to the Keras RNN, which skips the masked steps: it keeps the state (and
    repeats the previous output) there instead of updating it. Left padding therefore leaves
    the initial zero state untouched, and the first real item starts from the same state as in
    an unpadded history: the outputs at the real positions do not depend on the padding.

    Args:
        units: State width (the output width).
        dropout: Dropout rate on the RNN's inputs during training.
        **kwargs: Base Layer arguments (``name``, ``trainable``, ``dtype``).
    """

    rnn_class: type[keras.layers.Layer] = keras.layers.GRU

    def __init__(self, units: int = 64, dropout: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = check_positive_int(owner, "units", units)
        self.dropout = check_rate(owner, "dropout", dropout)
        self.rnn = self.rnn_class(self.units, dropout=self.dropout, return_sequences=True, name="rnn")

    def encode(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool | None) -> tf.Tensor:
        """The RNN's outputs at every step, the padded steps skipped."""
        return self.rnn(sequence, mask=mask, training=training)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """``[batch, L, units]``."""
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def get_config(self) -> dict[str, Any]:
        """``units``, ``dropout`` and the base Layer fields."""
        config: dict[str, Any] = super().get_config()
        config.update({"units": self.units, "dropout": self.dropout})
        return config


@keras.utils.register_keras_serializable(package="tfrec_llm")
class GRUEncoder(RecurrentEncoder):
    """A unidirectional ``keras.layers.GRU`` (defaults: reset_after, sigmoid gates) over a history.

    See ``RecurrentEncoder`` for the arguments and for why left padding changes nothing.

    Example:
        >>> encoder = GRUEncoder(units=8)
        >>> encoder(tf.ones([2, 5, 4]), tf.ones([2, 5], bool)).shape
        TensorShape([2, 5, 8])
    """

    rnn_class = keras.layers.GRU


@keras.utils.register_keras_serializable(package="tfrec_llm")
class LSTMEncoder(RecurrentEncoder):
    """A unidirectional ``keras.layers.LSTM`` (defaults: sigmoid gates, forget bias 1) over a history.

    See ``RecurrentEncoder`` for the arguments and for why left padding changes nothing.

    Example:
        >>> encoder = LSTMEncoder(units=8)
        >>> encoder(tf.ones([2, 5, 4]), tf.ones([2, 5], bool)).shape
        TensorShape([2, 5, 8])
    """

    rnn_class = keras.layers.LSTM
