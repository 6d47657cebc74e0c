"""Causal dilated 1-D convolutions over a history (a TCN-style encoder)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers.history_encoder import HistoryEncoder, check_positive_int, zero_padding


def _check_activation(owner: str, activation: Any) -> str:
    if not isinstance(activation, str):
        raise ConfigError(f"{owner}: activation must be the name of a Keras activation, got {activation!r}")
    try:
        keras.activations.get(activation)
    except ValueError as error:
        raise ConfigError(
            f"{owner}: unknown activation={activation!r}; use a Keras activation name "
            "such as 'relu', 'gelu' or 'linear'"
        ) from error
    return activation


def _check_dilations(owner: str, dilations: Any) -> tuple[int, ...]:
    if isinstance(dilations, str | bytes) or not isinstance(dilations, Sequence) or not dilations:
        raise ConfigError(
            f"{owner}: dilations must be a non-empty sequence of positive integers (one conv layer "
            f"each), got dilations={dilations!r}"
        )
    return tuple(check_positive_int(owner, "dilations[]", d) for d in dilations)


@keras.utils.register_keras_serializable(package="tfrec_llm")
class CausalConvEncoder(HistoryEncoder):
    """A stack of causal dilated ``Conv1D`` layers, one per entry of ``dilations``.

    Each layer pads on the left only (``padding="causal"``): position t sees positions
    ``t - (kernel_size - 1) * dilation .. t`` of the layer below. The padded steps are zero at
    the input and after every layer, so left padding looks exactly like the zeros the
    convolution pads with, and a history's outputs do not depend on how much padding precedes
    it. With ``residual``, each layer's output is added to its input (the first layer's input
    is projected to ``filters`` by a bias-free ``Dense`` when d != filters). Receptive field:
    ``1 + (kernel_size - 1) * sum(dilations)`` positions.

    Args:
        filters: Output width (``units``) of every layer.
        kernel_size: Taps per convolution.
        dilations: One dilation rate per layer, e.g. ``(1, 2, 4)``.
        activation: Keras activation name applied after each convolution.
        residual: Add each layer's input to its output.
        **kwargs: Base Layer arguments (``name``, ``trainable``, ``dtype``).

    Example:
        >>> encoder = CausalConvEncoder(filters=8, kernel_size=2, dilations=(1, 2))
        >>> encoder(tf.ones([2, 5, 4]), tf.ones([2, 5], bool)).shape
        TensorShape([2, 5, 8])
    """

    def __init__(
        self,
        filters: int = 64,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 2, 4),
        activation: str = "relu",
        residual: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.filters = check_positive_int(owner, "filters", filters)
        self.kernel_size = check_positive_int(owner, "kernel_size", kernel_size)
        self.dilations = _check_dilations(owner, dilations)
        self.activation = _check_activation(owner, activation)
        if not isinstance(residual, bool):
            raise ConfigError(f"{owner}: residual must be true or false, got residual={residual!r}")
        self.residual = residual
        self.convolutions = [
            keras.layers.Conv1D(
                self.filters,
                self.kernel_size,
                dilation_rate=dilation,
                padding="causal",
                activation=self.activation,
                name=f"conv_{i}",
            )
            for i, dilation in enumerate(self.dilations)
        ]
        self.input_projection: keras.layers.Dense | None = None

    def build(self, input_shape: Any) -> None:
        """Creates the residual input projection when the input width differs from ``filters``."""
        width = tf.TensorShape(input_shape)[-1]
        if self.residual and width != self.filters:
            self.input_projection = keras.layers.Dense(self.filters, use_bias=False, name="input_projection")
        super().build(input_shape)

    def encode(self, sequence: tf.Tensor, mask: tf.Tensor, training: bool | None) -> tf.Tensor:
        """Runs the convolutions, zeroing the padded steps after each."""
        hidden = sequence
        for i, convolution in enumerate(self.convolutions):
            outputs = zero_padding(convolution(hidden), mask)
            if self.residual:
                skip = self.input_projection(hidden) if i == 0 and self.input_projection else hidden
                outputs = outputs + skip
            hidden = outputs
        return hidden

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """``[batch, L, filters]``."""
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (``dilations`` as a list) and the base Layer fields."""
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "dilations": list(self.dilations),
                "activation": self.activation,
                "residual": self.residual,
            }
        )
        return config
