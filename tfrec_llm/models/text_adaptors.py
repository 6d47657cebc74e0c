"""Adaptors that let frozen item text vectors carry collaborative signal (issue 10, part 1).

- ``TextWhitening``: mean-centering and PCA whitening of the catalog's frozen BERT vectors
  (BERT-whitening), a fixed layer whose statistics ``adapt`` computes once from the catalog.
- ``TextMoEAdaptor``: several linear projections mixed by a softmax gate on the input
  (UniSRec's mixture-of-experts adaptor), trained with the towers.
- ``AlignmentLoss``: pulls an item's projected text vector toward its learned id vector (the id
  side is a stop-gradient target), so the text path of a cold item imitates the collaborative
  embedding that warm items learn.

Example:
    >>> layer = TextWhitening(2)
    >>> layer.adapt(np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, -1.0]]))
    >>> np.round(layer(tf.constant([[2.0, 0.0]])).numpy(), 6).tolist()
    [[0.0, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfrec_llm.errors import ConfigError

ALIGNMENT_KINDS = ("cosine", "mse")


@keras.utils.register_keras_serializable(package="tfrec_llm")
class TextWhitening(keras.layers.Layer):
    """``(x - mean) @ W`` with fixed (non-trainable) ``mean`` and ``W`` set by ``adapt``.

    ``W = U diag(1 / sqrt(s + epsilon * mean(s)))`` from the eigendecomposition ``U diag(s) U^T``
    of the covariance of the adapted vectors, so those vectors come out with (near) identity
    covariance. ``epsilon`` (relative to the mean eigenvalue) keeps near-null directions from
    being amplified without bound. Before ``adapt`` the layer is the identity.

    Args:
        dim: Width of the vectors.
        epsilon: Eigenvalue floor, as a fraction of the mean eigenvalue.
    """

    def __init__(self, dim: int, epsilon: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dim = dim
        self.epsilon = epsilon
        self.mean = self.add_weight(name="mean", shape=[dim], initializer="zeros", trainable=False)
        self.matrix = self.add_weight(
            name="matrix", shape=[dim, dim], initializer="identity", trainable=False
        )

    def adapt(self, vectors: np.ndarray) -> None:
        """Sets ``mean`` and ``W`` from [n, dim] vectors (the catalog's text table)."""
        x = np.asarray(vectors, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] < 2:
            raise ConfigError(f"TextWhitening.adapt: expected [n >= 2, {self.dim}] vectors, got {x.shape}")
        mean = x.mean(axis=0)
        values, vectors_u = np.linalg.eigh(np.cov(x - mean, rowvar=False, bias=True))
        values = np.maximum(values, 0.0)
        scale = 1.0 / np.sqrt(values + self.epsilon * max(values.mean(), 1e-12))
        self.mean.assign(mean.astype(np.float32))
        self.matrix.assign((vectors_u * scale[np.newaxis, :]).astype(np.float32))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return tf.matmul(inputs - self.mean, self.matrix)

    def get_config(self) -> dict[str, Any]:
        """``dim``, ``epsilon`` and the base fields (the statistics are weights)."""
        return {**super().get_config(), "dim": self.dim, "epsilon": self.epsilon}


@keras.utils.register_keras_serializable(package="tfrec_llm")
class TextMoEAdaptor(keras.layers.Layer):
    """``activation(sum_k softmax(x G)_k (x W_k + b_k))``: ``experts`` projections, softmax-gated.

    Args:
        experts: Number of projections.
        units: Output width.
        activation: Keras activation of the mixed output (None = linear).
    """

    def __init__(self, experts: int, units: int, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if experts < 1:
            raise ConfigError(f"TextMoEAdaptor: experts must be >= 1, got {experts}")
        self.experts = experts
        self.units = units
        self.activation_name = activation
        self.activation = keras.activations.get(activation)

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = int(input_shape[-1])
        self.kernels = self.add_weight(
            name="kernels", shape=[self.experts, dim, self.units], initializer="glorot_uniform"
        )
        self.biases = self.add_weight(name="biases", shape=[self.experts, self.units], initializer="zeros")
        self.gate = self.add_weight(name="gate", shape=[dim, self.experts], initializer="glorot_uniform")
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        # One GEMM for all experts: an einsum over "...d,edu" runs ~500x slower on CPU.
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, [-1, shape[-1]])
        weights = tf.nn.softmax(tf.matmul(flat, self.gate), axis=-1)  # [n, experts]
        kernel = tf.reshape(tf.transpose(self.kernels, [1, 0, 2]), [tf.shape(self.kernels)[1], -1])
        projected = tf.reshape(tf.matmul(flat, kernel), [-1, self.experts, self.units]) + self.biases
        mixed = tf.reduce_sum(weights[:, :, tf.newaxis] * projected, axis=1)
        return self.activation(tf.reshape(mixed, tf.concat([shape[:-1], [self.units]], axis=0)))

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments and the base fields."""
        return {
            **super().get_config(),
            "experts": self.experts,
            "units": self.units,
            "activation": self.activation_name,
        }


@keras.utils.register_keras_serializable(package="tfrec_llm")
class AlignmentLoss(keras.layers.Layer):
    """``weight`` x mean over items of ``1 - cos(text, stop_gradient(ids))`` (or their squared distance).

    Args:
        weight: Loss weight.
        kind: ``cosine`` (1 - cosine similarity) or ``mse`` (mean squared difference per
            coordinate).
    """

    def __init__(self, weight: float = 1.0, kind: str = "cosine", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in ALIGNMENT_KINDS:
            raise ConfigError(f"AlignmentLoss: kind must be one of {ALIGNMENT_KINDS}, got {kind!r}")
        self.weight = weight
        self.kind = kind

    def call(self, text: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        target = tf.stop_gradient(ids)
        if self.kind == "cosine":
            cosine = tf.reduce_sum(tf.math.l2_normalize(text, -1) * tf.math.l2_normalize(target, -1), -1)
            per_item = 1.0 - cosine
        else:
            per_item = tf.reduce_mean(tf.square(text - target), -1)
        return self.weight * tf.reduce_mean(per_item)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments and the base fields."""
        return {**super().get_config(), "weight": self.weight, "kind": self.kind}
