"""Objectives as sympy expressions: per-sample losses, the symbolic twin of opo_theory.objectives.

Each function returns one response's (or one pair's) loss. chi² convention: the OPO penalty is
(mu/2) v², i.e. mu times ½ Pearson chi² (eq 15). Derivatives in any coordinate come from
``opo_theory.geometry.coordinates.derivative`` / ``logit_derivative``.
"""

from __future__ import annotations

import sympy as sp

from opo_theory.validation import require_choice, require_positive


def _positive(name: str, value) -> None:
    if isinstance(value, (int, float)):
        require_positive(name, value)


def opo_surrogate(g, delta, mu):
    """Eq 19: -g Delta + (mu/2) Delta² (log-ratio surrogate, v ≈ Delta)."""
    _positive("mu", mu)
    return -g * delta + mu / 2 * delta**2


def opo_exact(g, delta, mu):
    """Eq 15 with v = e^Delta - 1: -g v + (mu/2) v²."""
    _positive("mu", mu)
    v = sp.exp(delta) - 1
    return -g * v + mu / 2 * v**2


KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimator(x, estimator: str):
    """k1 = -x, k2 = x²/2, k3 = e^x - x - 1 with x = log pi_ref - log pi."""
    require_choice("KL estimator", estimator, KL_ESTIMATORS)
    return {"k1": -x, "k2": x**2 / 2, "k3": sp.exp(x) - x - 1}[estimator]


def kl_pg(a, delta, x, beta, estimator: str = "k3"):
    """Unclipped PPO-KL: -A e^Delta + beta k(x), Delta = log pi - log pi_old, x = log pi_ref - log pi."""
    _positive("beta", beta)
    return -a * sp.exp(delta) + beta * kl_estimator(x, estimator)


def dpo(h, beta):
    """DPO: -log sigma(beta h), h = chosen minus rejected log-ratio margin."""
    _positive("beta", beta)
    return -sp.log(1 / (1 + sp.exp(-beta * h)))


def ipo(h, beta):
    """IPO: (h - 1/(2 beta))²."""
    _positive("beta", beta)
    return (h - 1 / (2 * beta)) ** 2


def chipo(delta_w, delta_l, beta):
    """chiPO: -log sigma(beta (phi(e^Delta_w) - phi(e^Delta_l))), phi(z) = z + log z (no margin clip)."""
    _positive("beta", beta)
    phi = lambda d: sp.exp(d) + d
    return -sp.log(1 / (1 + sp.exp(-beta * (phi(delta_w) - phi(delta_l)))))


def kl_regularized_optimum_ratio(a, a_normalizer, beta):
    """argmax E_pi[A] - beta KL(pi||pi_ref): pi/pi_ref = e^(A/beta) / Z (ratio exponential in A)."""
    _positive("beta", beta)
    return sp.exp(a / beta) / a_normalizer


def chi2_optimum_ratio(a, a_mean, mu):
    """argmax E_pi[A] - (mu/2) E_ref[(t-1)²] on H_0: t = 1 + (A - E_ref A)/mu (ratio linear in A)."""
    _positive("mu", mu)
    return 1 + (a - a_mean) / mu
