"""Keras layers of tfrec_llm, one computation per module."""

from tfrec_llm.models.layers.masked_mean import MaskedMeanPooling

__all__ = ["MaskedMeanPooling"]
