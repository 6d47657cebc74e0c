"""tfrec_llm.models."""
