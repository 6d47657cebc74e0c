"""tfrec_llm.training."""
