"""tfrec_llm.serving."""
