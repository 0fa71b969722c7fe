"""Compact LM RL trainer: verifiable arithmetic learned by the built-in char GPT or a local transformers
causal LM ('hf:<dir>'), with any registered objective, logging the model-scale diagnostics
(metrics.jsonl + config.json per run)."""
