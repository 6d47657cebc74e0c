"""Keras layers of tfrec_llm, one computation per module.

``MaskedMeanPooling`` is defined in ``tfrec_llm.text.pooling`` (``text`` is below ``models`` in
the import order, and the text encoder pools with the same code) and re-exported here.

The history encoders (causal ``[batch, L, d]`` -> ``[batch, L, units]`` over left-padded
histories, see ``history_encoder.py``) are listed by name in ``history_encoders.py``.
"""

from tfrec_llm.models.layers.causal_attention import CausalAttentionEncoder
from tfrec_llm.models.layers.causal_conv import CausalConvEncoder
from tfrec_llm.models.layers.causal_mean import CumulativeMeanEncoder
from tfrec_llm.models.layers.history_encoder import HistoryEncoder, last_position
from tfrec_llm.models.layers.history_encoders import HISTORY_ENCODERS, build_history_encoder
from tfrec_llm.models.layers.recurrent import GRUEncoder, LSTMEncoder
from tfrec_llm.text.pooling import MaskedMeanPooling

__all__ = [
    "HISTORY_ENCODERS",
    "CausalAttentionEncoder",
    "CausalConvEncoder",
    "CumulativeMeanEncoder",
    "GRUEncoder",
    "HistoryEncoder",
    "LSTMEncoder",
    "MaskedMeanPooling",
    "build_history_encoder",
    "last_position",
]
