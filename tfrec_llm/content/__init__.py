"""Personalised text grounded in the evidence of a recommendation.

``evidence`` holds the plain data (`Explanation`: the history items behind a recommendation and
what they share with it); generators render a short explanation from it (a template by
default, or a local ``transformers`` causal LM, or an HTTP service), and the faithfulness check
rejects any text that names an item, category or year absent from the evidence. The package
sits beside ``data`` and ``text`` in the import order: it imports no model code.
"""
