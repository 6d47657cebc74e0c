"""tfrec_llm.cli."""
