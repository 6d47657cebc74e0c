"""The history encoders by name, and the one function that builds them from a name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from tfrec_llm.errors import ConfigError
from tfrec_llm.models.layers.causal_attention import CausalAttentionEncoder
from tfrec_llm.models.layers.causal_conv import CausalConvEncoder
from tfrec_llm.models.layers.causal_mean import CumulativeMeanEncoder
from tfrec_llm.models.layers.history_encoder import HistoryEncoder
from tfrec_llm.models.layers.recurrent import GRUEncoder, LSTMEncoder

HISTORY_ENCODERS: Mapping[str, type[HistoryEncoder]] = MappingProxyType(
    {
        "mean": CumulativeMeanEncoder,
        "cnn": CausalConvEncoder,
        "gru": GRUEncoder,
        "lstm": LSTMEncoder,
        "attention": CausalAttentionEncoder,
    }
)


def build_history_encoder(name: str, /, **kwargs: Any) -> HistoryEncoder:
    """Builds the history encoder called ``name`` with its constructor arguments.

    Args:
        name: One of ``HISTORY_ENCODERS`` (``mean``, ``cnn``, ``gru``, ``lstm``, ``attention``).
        **kwargs: The encoder's constructor arguments (and base Layer arguments, ``name``
            included: ``name`` is positional-only).

    Returns:
        The encoder layer.

    Raises:
        ConfigError: ``name`` is not a known encoder, or an argument is not one the encoder takes
            or has an invalid value.

    Example:
        >>> build_history_encoder("gru", units=8).units
        8
    """
    if name not in HISTORY_ENCODERS:
        raise ConfigError(f"unknown history encoder {name!r}; expected one of {sorted(HISTORY_ENCODERS)}")
    try:
        return HISTORY_ENCODERS[name](**kwargs)
    except TypeError as error:
        raise ConfigError(f"history encoder {name!r}: {error}; check its arguments") from error
