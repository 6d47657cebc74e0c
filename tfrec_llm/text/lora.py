"""LoRA adapters for the attention query/value projections of a ``transformers`` TF BERT.

tf-keras and the ``transformers`` TF classes have no LoRA (Keras 3's ``enable_lora`` needs
Keras 3, which TFRS rejects), so ``LoRADense`` wraps a frozen ``Dense``:
``y = dense(x) + (alpha / rank) * x @ A @ B`` with ``A`` small and random and ``B`` zero, so an
adapted model starts equal to the frozen one. ``install_lora`` puts the wrappers into a
``TFBertModel`` (``TFBertSelfAttention.query`` and ``.value``); ``merge_lora`` folds them into
the kernels (``kernel += (alpha / rank) * A @ B``) and puts the plain ``Dense`` layers back, so
an exported SavedModel holds the stock BERT graph and no new op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfrec_llm.errors import ConfigError

PROJECTIONS = ("query", "value")


@tf_keras.utils.register_keras_serializable(package="tfrec_llm")
class LoRADense(tf_keras.layers.Layer):  # type: ignore[misc]
    """A frozen ``Dense`` plus a trainable low-rank update: ``dense(x) + (alpha/rank) x A B``.

    Args:
        dense: The ``Dense`` layer to adapt (or its serialized config). It is frozen here.
        rank: Rank r of the update; ``A`` is ``[in, r]``, ``B`` is ``[r, units]``.
        alpha: Scale numerator; the update is multiplied by ``alpha / rank``.
        seed: Seed of ``A``'s initializer (uniform in +-1/sqrt(in), as in the LoRA paper's code).
        **kwargs: Base Layer arguments (``name``).

    Example:
        >>> layer = LoRADense(tf_keras.layers.Dense(4), rank=2, alpha=4.0)
        >>> layer(tf.ones([3, 5])).shape
        TensorShape([3, 4])
    """

    def __init__(self, dense: Any, rank: int = 4, alpha: float = 8.0, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(dense, dict):
            dense = tf_keras.layers.deserialize(dense)
        if not isinstance(dense, tf_keras.layers.Dense):
            raise ConfigError(f"LoRADense wraps a Dense layer, got {type(dense).__name__}")
        _check_rank_alpha(rank, alpha)
        self.dense_trainable = bool(dense.trainable)  # restored by merge_lora
        dense.trainable = False
        self.dense = dense
        self.rank = rank
        self.alpha = float(alpha)
        self.seed = seed
        self.lora_a: tf.Variable | None = None
        self.lora_b: tf.Variable | None = None

    @property
    def scale(self) -> float:
        """``alpha / rank``, the factor of the low-rank update."""
        return self.alpha / self.rank

    def build(self, input_shape: Any) -> None:
        width = int(tf.TensorShape(input_shape)[-1])
        if not self.dense.built:
            self.dense.build(input_shape)
        bound = 1.0 / np.sqrt(width)
        self.lora_a = self.add_weight(
            "lora_a",
            shape=[width, self.rank],
            initializer=tf_keras.initializers.RandomUniform(-bound, bound, seed=self.seed),
            trainable=True,
        )
        self.lora_b = self.add_weight(
            "lora_b", shape=[self.rank, self.dense.units], initializer="zeros", trainable=True
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """``dense(inputs)`` plus the scaled low-rank update, for inputs of any rank >= 2."""
        low = tf.tensordot(inputs, self.lora_a, axes=1)
        update = tf.tensordot(low, self.lora_b, axes=1)
        return self.dense(inputs) + tf.cast(self.scale, update.dtype) * update

    def delta(self) -> tf.Tensor:
        """The kernel update ``(alpha / rank) * A @ B``, ``[in, units]``."""
        return self.scale * tf.matmul(self.lora_a, self.lora_b)

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return self.dense.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        dense = tf_keras.layers.serialize(self.dense)
        dense.pop("build_config", None)  # build() builds the Dense: the same config before and after
        config.update(
            {
                "dense": dense,
                "rank": self.rank,
                "alpha": self.alpha,
                "seed": self.seed,
            }
        )
        return config


def _check_rank_alpha(rank: int, alpha: float) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"LoRA rank={rank!r} is invalid: expected an int >= 1.")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ConfigError(f"LoRA alpha={alpha!r} is invalid: expected a number > 0.")


def _self_attentions(bert: Any, layers: int = 0) -> list[Any]:
    """The ``TFBertSelfAttention`` layers of the top ``layers`` blocks (0 = all)."""
    blocks = list(bert.bert.encoder.layer)
    if isinstance(layers, bool) or not isinstance(layers, int) or not 0 <= layers <= len(blocks):
        raise ConfigError(
            f"LoRA layers={layers!r} is invalid: expected an int in [0, {len(blocks)}] "
            "(0 = every transformer layer, N = the top N)."
        )
    chosen = blocks if layers == 0 else blocks[len(blocks) - layers :]
    return [block.attention.self_attention for block in chosen]


def install_lora(bert: Any, rank: int, alpha: float, layers: int = 0, seed: int = 0) -> list[LoRADense]:
    """Wraps the query and value projections of a built ``TFBertModel`` in ``LoRADense``.

    Args:
        bert: A built ``transformers.TFBertModel`` (``bert_loader.load_bert``).
        rank: Adapter rank (>= 1).
        alpha: Adapter scale numerator (> 0).
        layers: 0 = adapt every transformer layer; N = only the top N.
        seed: Base seed of the ``A`` initializers (each adapter adds its position).

    Returns:
        The installed wrappers, bottom layer first, query before value.

    Raises:
        ConfigError: Bad ``rank``, ``alpha`` or ``layers``, or adapters already installed.
    """
    _check_rank_alpha(rank, alpha)
    wrappers = []
    for attention in _self_attentions(bert, layers):
        for name in PROJECTIONS:
            dense = getattr(attention, name)
            if isinstance(dense, LoRADense):
                raise ConfigError("install_lora: this BERT already has LoRA adapters")
            wrapper = LoRADense(dense, rank, alpha, seed=seed + len(wrappers), name=f"{name}_lora")
            with tf.name_scope(attention.name), tf.name_scope(wrapper.name):
                wrapper.build(tf.TensorShape([None, None, int(dense.kernel.shape[0])]))
            setattr(attention, name, wrapper)
            wrappers.append(wrapper)
    return wrappers


def lora_layers_of(bert: Any) -> list[LoRADense]:
    """The ``LoRADense`` wrappers installed in ``bert`` (bottom layer first)."""
    found = []
    for attention in _self_attentions(bert):
        found.extend(
            getattr(attention, name)
            for name in PROJECTIONS
            if isinstance(getattr(attention, name), LoRADense)
        )
    return found


def lora_weights(bert: Any) -> list[tf.Variable]:
    """The adapter weights (``A`` and ``B`` of every wrapper) of ``bert``."""
    return [w for layer in lora_layers_of(bert) for w in (layer.lora_a, layer.lora_b)]


def merge_lora(bert: Any) -> int:
    """Folds every adapter into its kernel and puts the plain ``Dense`` back, in place.

    Afterwards ``bert`` is a stock ``TFBertModel`` whose query/value kernels are
    ``kernel + (alpha / rank) * A @ B``; its outputs equal the adapted model's up to float
    rounding.

    Returns:
        How many projections were merged.
    """
    merged = 0
    for attention in _self_attentions(bert):
        for name in PROJECTIONS:
            wrapper = getattr(attention, name)
            if isinstance(wrapper, LoRADense):
                wrapper.dense.kernel.assign_add(wrapper.delta())
                wrapper.dense.trainable = wrapper.dense_trainable
                setattr(attention, name, wrapper.dense)
                merged += 1
    return merged


def merged_copy(encoder: Any) -> Any:
    """A new ``TextEncoder`` equal to ``encoder`` with its adapters merged (no LoRA layers).

    ``encoder`` itself is left as it is, so a model can go on training after an export.
    """
    copy = type(encoder).from_config(encoder.get_config())
    copy.set_weights(encoder.get_weights())
    merge_lora(copy.bert)
    copy.lora_rank = 0
    return copy
