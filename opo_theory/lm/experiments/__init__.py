"""Experiments built on the training loop: compare, the confidence audit, the real-model runs."""
