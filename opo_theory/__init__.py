"""opo_theory: machine-checked geometry of RLHF policy-optimization objectives.

Sub-packages: ``geometry`` (sympy), ``claims`` (verdicts), ``objectives`` (torch losses),
``diagnostics``, ``bandit`` (exact toy dynamics), ``lm`` (compact GPT RL trainer).
"""

__version__ = "0.1.0"
