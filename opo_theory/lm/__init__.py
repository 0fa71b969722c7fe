"""Compact LM RL trainer: a small char-level GPT learning verifiable arithmetic with any registered
objective, logging the model-scale diagnostics (metrics.jsonl + config.json per run)."""
