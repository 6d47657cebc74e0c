"""SASRec-style causal Transformer over a history, with the last query's attention weights."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers.history_encoder import (
    HistoryEncoder,
    check_positive_int,
    check_rate,
    last_position,
    zero_padding,
)

LAYER_NORM_EPSILON = 1e-6


def attention_mask(mask: tf.Tensor) -> tf.Tensor:
    """``[batch, L, L]`` bool: query i may attend to key j iff j <= i and j is real (or j == i).

    A padded query attends to itself only, so its softmax is never empty (its output is zeroed
    afterwards); a real query never sees a padded key or a later position.
    """
    mask = tf.cast(mask, tf.bool)
    length = tf.shape(mask)[1]
    causal = tf.cast(tf.linalg.band_part(tf.ones([length, length]), -1, 0), tf.bool)
    diagonal = tf.cast(tf.eye(length), tf.bool)
    return causal[tf.newaxis] & (mask[:, tf.newaxis, :] | diagonal[tf.newaxis])


@keras.utils.register_keras_serializable(package="tfrec_llm")
class CausalAttentionEncoder(HistoryEncoder):
    """Causal self-attention blocks (SASRec) with pre-LayerNorm, GELU feed-forward and a final norm.

    Stages: input projection to ``width`` (a ``Dense``, only when d != width) -> plus a learned
    position embedding -> ``num_blocks`` x [x + Dropout(MHA(LN(x))), x + Dropout(FFN(LN(x)))]
    -> final LayerNorm. The FFN is Dense(4 * width, GELU) -> Dense(width); dropout also acts on
    the embeddings and on the attention weights. Padded steps are zeroed after every stage.

    Positions count real items from the oldest one (``cumsum(mask) - 1``), not columns, so the
    amount of left padding changes nothing and position t depends only on steps <= t. Histories
    with more than ``max_length`` real items share the last position embedding.

    Args:
        max_length: Rows of the position embedding: the longest history expected.
        num_blocks: Transformer blocks.
        num_heads: Attention heads; must divide ``width``.
        width: Model width (``units``).
        dropout: Dropout rate during training.
        **kwargs: Base Layer arguments (``name``, ``trainable``, ``dtype``).

    Example:
        >>> encoder = CausalAttentionEncoder(max_length=5, num_blocks=1, num_heads=2, width=8)
        >>> out, weights = encoder(tf.ones([2, 5, 4]), tf.ones([2, 5], bool), return_attention=True)
        >>> out.shape, weights.shape
        (TensorShape([2, 5, 8]), TensorShape([2, 2, 5]))
    """

    def __init__(
        self,
        max_length: int = 50,
        num_blocks: int = 2,
        num_heads: int = 2,
        width: int = 64,
        dropout: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.max_length = check_positive_int(owner, "max_length", max_length)
        self.num_blocks = check_positive_int(owner, "num_blocks", num_blocks)
        self.num_heads = check_positive_int(owner, "num_heads", num_heads)
        self.width = check_positive_int(owner, "width", width)
        self.dropout = check_rate(owner, "dropout", dropout)
        if self.width % self.num_heads:
            raise ConfigError(
                f"{owner}: width must be a multiple of num_heads, got width={width} and "
                f"num_heads={num_heads}; change one of them"
            )
        self.input_projection: keras.layers.Dense | None = None
        self.position_embedding = keras.layers.Embedding(self.max_length, self.width, name="positions")
        self.embedding_dropout = keras.layers.Dropout(self.dropout)
        norm = {"epsilon": LAYER_NORM_EPSILON}
        self.attention_norms, self.attentions, self.ffn_norms, self.ffn_in, self.ffn_out = [], [], [], [], []
        for i in range(self.num_blocks):
            self.attention_norms.append(keras.layers.LayerNormalization(**norm, name=f"attention_norm_{i}"))
            self.attentions.append(
                keras.layers.MultiHeadAttention(
                    self.num_heads, self.width // self.num_heads, dropout=self.dropout, name=f"attention_{i}"
                )
            )
            self.ffn_norms.append(keras.layers.LayerNormalization(**norm, name=f"ffn_norm_{i}"))
            self.ffn_in.append(keras.layers.Dense(4 * self.width, activation="gelu", name=f"ffn_in_{i}"))
            self.ffn_out.append(keras.layers.Dense(self.width, name=f"ffn_out_{i}"))
        self.residual_dropout = keras.layers.Dropout(self.dropout)
        self.final_norm = keras.layers.LayerNormalization(**norm, name="final_norm")

    def build(self, input_shape: Any) -> None:
        """Creates the input projection when the input width differs from ``width``."""
        shape = tf.TensorShape(input_shape)
        if shape[1] is not None and shape[1] > self.max_length:
            raise ConfigError(
                f"{type(self).__name__}: histories of length {shape[1]} exceed max_length="
                f"{self.max_length}; raise max_length to at least {shape[1]}"
            )
        if shape[-1] != self.width:
            self.input_projection = keras.layers.Dense(self.width, name="input_projection")
        super().build(input_shape)

    def call(  # type: ignore[override]
        self,
        sequence: tf.Tensor,
        mask: tf.Tensor,
        training: bool | None = None,
        return_attention: bool = False,
    ) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        """Encodes a left-padded history.

        Args:
            sequence: float ``[batch, L, d]`` item embeddings.
            mask: ``[batch, L]`` bool (True = real item).
            training: Whether dropout is active.
            return_attention: Also return the last block's attention weights of the last real
                position (the explainability hook).

        Returns:
            ``[batch, L, width]`` (zeros at padded positions); with ``return_attention`` also
            ``[batch, num_heads, L]`` attention weights over the history (zeros for an empty one).
        """
        mask = tf.cast(mask, tf.bool)
        hidden = zero_padding(sequence, mask)
        if self.input_projection is not None:
            hidden = self.input_projection(hidden)
        positions = tf.clip_by_value(tf.cumsum(tf.cast(mask, tf.int32), axis=1) - 1, 0, self.max_length - 1)
        hidden = hidden + self.position_embedding(positions)
        hidden = zero_padding(self.embedding_dropout(hidden, training=training), mask)
        allowed = attention_mask(mask)
        weights = None
        for i in range(self.num_blocks):
            normed = self.attention_norms[i](hidden)
            attended, weights = self.attentions[i](
                normed, normed, attention_mask=allowed, return_attention_scores=True, training=training
            )
            hidden = hidden + self.residual_dropout(attended, training=training)
            feed = self.ffn_out[i](self.ffn_in[i](self.ffn_norms[i](hidden)))
            hidden = zero_padding(hidden + self.residual_dropout(feed, training=training), mask)
        outputs = zero_padding(self.final_norm(hidden), mask)
        if not return_attention:
            return outputs
        # weights: [batch, heads, query, key] -> the last real query's row, [batch, heads, key].
        return outputs, last_position(tf.transpose(weights, [0, 2, 1, 3]), mask)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        """``[batch, L, width]``."""
        return tf.TensorShape(input_shape)[:-1].concatenate([self.width])

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments and the base Layer fields."""
        config: dict[str, Any] = super().get_config()
        config.update(
            {
                "max_length": self.max_length,
                "num_blocks": self.num_blocks,
                "num_heads": self.num_heads,
                "width": self.width,
                "dropout": self.dropout,
            }
        )
        return config
