"""tfrec_llm.evaluation."""
