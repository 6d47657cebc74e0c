"""tfrec_llm.text."""
