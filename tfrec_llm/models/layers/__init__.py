"""Keras layers of tfrec_llm, one computation per module.

``MaskedMeanPooling`` is defined in ``tfrec_llm.text.pooling`` (``text`` is below ``models`` in
the import order, and the text encoder pools with the same code) and re-exported here.
"""

from tfrec_llm.text.pooling import MaskedMeanPooling

__all__ = ["MaskedMeanPooling"]
