"""Seeded random instances for numeric verification (vectorized: one row per instance)."""

from __future__ import annotations

import numpy as np

N_INSTANCES = 2000


def random_instances(n: int = N_INSTANCES, k_max: int = 8, seed: int = 0):
    """pi_k ~ Dirichlet (K outcomes, padded), advantages ~ N(0, s²), alpha ~ U[0,1], mu ~ logU[0.1,10].

    Returns (pi_k [n,K], A [n,K], alpha [n,1], mu [n,1]) with K = k_max; each row uses a random
    number of live outcomes (>= 2); dead outcomes have pi_k = 0 and are ignored by E_{pi_k}.
    """
    rng = np.random.default_rng(seed)
    live = rng.integers(2, k_max + 1, size=n)
    mask = np.arange(k_max)[None, :] < live[:, None]
    pi_k = rng.gamma(rng.uniform(0.2, 3.0, size=(n, 1)), size=(n, k_max)) * mask + 1e-300 * mask
    pi_k /= pi_k.sum(1, keepdims=True)
    adv = rng.normal(size=(n, k_max)) * rng.uniform(0.1, 5.0, size=(n, 1)) * mask
    alpha = rng.uniform(0, 1, size=(n, 1))
    mu = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=(n, 1)))
    return pi_k, adv, alpha, mu, mask


def expect(pi_k: np.ndarray, f: np.ndarray) -> np.ndarray:
    """E_{pi_k}[f] row-wise, keeping the outcome axis for broadcasting."""
    return (pi_k * f).sum(-1, keepdims=True)


def escort_weights(pi_k: np.ndarray, adv: np.ndarray, alpha: np.ndarray, mask: np.ndarray):
    """Def 3.1 numerically: w~ = (P*/pi_k)^(1-alpha), P* ∝ e^A (0 outside the support)."""
    a = np.where(mask, adv, -np.inf)
    log_p_star = a - np.logaddexp.reduce(a, axis=-1, keepdims=True)
    log_pi = np.log(np.where(mask, pi_k, 1.0))
    return np.where(mask, np.exp((1 - alpha) * (log_p_star - log_pi)), 0.0)
