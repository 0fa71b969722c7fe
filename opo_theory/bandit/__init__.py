"""Exact toy dynamics on bandits: every loss comes from the objective registry.

problems: binary-logit toy, K-armed and contextual bandits. enumerate: PolicyBatches for exact
expectations (w_i = pi_k(arm)) and for sampled groups. experiments: saturation, dynamics, grid,
approx, positivity, kl-vs-chi2 (each returns a JSON-serializable dict).
"""
