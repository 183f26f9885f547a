"""LLM backends, mutators (offline and LLM), targeted requests and the CLI."""
