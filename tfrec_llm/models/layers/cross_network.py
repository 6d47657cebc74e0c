"""DCN-v2 feature crossing: ``tfrs.layers.dcn.Cross`` layers and a deep MLP, stacked or parallel.

Each cross layer computes ``x_{l+1} = x0 * (W x_l + b) + x_l`` (``*`` elementwise; with
``projection_dim`` the matrix is the low-rank ``V U``), so ``l`` layers hold every feature
interaction up to degree ``l + 1``. The two layouts of the DCN-v2 paper (Wang et al., 2021):

* ``stacked``: ``deep(cross(x0))``, the MLP reads the crossed features;
* ``parallel``: ``concat(cross(x0), deep(x0))``.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from tfrec_llm.config.ranking_checks import CROSS_STRUCTURES
from tfrec_llm.errors import ConfigError


@keras.utils.register_keras_serializable(package="tfrec_llm")
class CrossNetwork(keras.layers.Layer):
    """[batch, d] features -> [batch, out] crossed and deep features (DCN-v2).

    Args:
        cross_layers: Number of ``tfrs.layers.dcn.Cross`` layers (0 = the MLP alone).
        structure: ``stacked`` or ``parallel``.
        projection_dim: Low-rank width of each cross matrix; 0 = full rank (``d x d``).
        deep_layers: Widths of the ReLU layers of the deep MLP (empty = cross layers alone).
        dropout: Dropout after each deep layer, in training.

    The output width is ``deep_layers[-1]`` (stacked; ``d`` without deep layers) or
    ``d + deep_layers[-1]`` (parallel).

    Example:
        >>> net = CrossNetwork(cross_layers=2, structure="parallel", deep_layers=[8])
        >>> net(tf.ones([3, 5])).shape
        TensorShape([3, 13])
    """

    def __init__(
        self,
        cross_layers: int = 2,
        structure: str = "stacked",
        projection_dim: int = 0,
        deep_layers: tuple[int, ...] | list[int] = (128, 64),
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        deep_layers = tuple(int(width) for width in deep_layers)
        if structure not in CROSS_STRUCTURES:
            raise ConfigError(f"CrossNetwork: structure must be one of {CROSS_STRUCTURES}, got {structure!r}")
        if cross_layers < 0 or (cross_layers == 0 and not deep_layers):
            raise ConfigError(
                f"CrossNetwork: cross_layers={cross_layers} with deep_layers={list(deep_layers)}; "
                "give at least one cross layer or one deep layer"
            )
        self.cross_layers = int(cross_layers)
        self.structure = structure
        self.projection_dim = int(projection_dim)
        self.deep_layers = deep_layers
        self.dropout = float(dropout)
        self.crosses = [
            tfrs.layers.dcn.Cross(projection_dim=self.projection_dim or None, name=f"cross_{i}")
            for i in range(self.cross_layers)
        ]
        self.deep: list[keras.layers.Layer] = []
        for i, width in enumerate(deep_layers):
            self.deep.append(keras.layers.Dense(width, activation="relu", name=f"deep_{i}"))
            if self.dropout > 0:
                self.deep.append(keras.layers.Dropout(self.dropout, name=f"deep_dropout_{i}"))

    def cross(self, x0: tf.Tensor) -> tf.Tensor:
        """The cross layers alone: ``x_{l+1} = x0 * (W x_l + b) + x_l`` from ``x_0 = x0``."""
        x = x0
        for layer in self.crosses:
            x = layer(x0, x)
        return x

    def call(self, x0: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        if self.structure == "stacked":
            return self._mlp(self.cross(x0), training)
        return tf.concat([self.cross(x0), self._mlp(x0, training)], axis=-1)

    def _mlp(self, x: tf.Tensor, training: bool | None) -> tf.Tensor:
        for layer in self.deep:
            x = layer(x, training=training)
        return x

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments (``deep_layers`` as a list) plus the base fields."""
        return {
            **super().get_config(),
            "cross_layers": self.cross_layers,
            "structure": self.structure,
            "projection_dim": self.projection_dim,
            "deep_layers": list(self.deep_layers),
            "dropout": self.dropout,
        }
