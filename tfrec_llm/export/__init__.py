"""tfrec_llm.export."""
