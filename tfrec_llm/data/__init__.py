"""tfrec_llm.data."""
