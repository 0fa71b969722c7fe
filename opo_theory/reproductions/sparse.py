"""Regularisation error of sparse (Tsallis / chi²) vs softmax (KL) regularised optima as |A| grows.

Lee, Choi & Oh 2018 (Sparse MDPs, arXiv 1709.06293), bandit case (gamma = 0): the optimum of
E_pi[r] + alpha S(pi) is softmax(r/alpha) for the Shannon entropy and sparsemax(r/alpha) for the sparse
Tsallis entropy S(pi) = ½ (1 - sum pi²); its suboptimality max r - E_pi[r] is at most alpha log|A| (soft)
and alpha (|A| - 1)/(2|A|) < alpha/2 (sparse): "constant vs growing like log|A|".
Both optima come from the toolkit: the chi² one is GOPO's bounded projection (``bounded_target``), since
(mu/2) chi²(pi || uniform) = (mu |A| / 2) sum pi² - mu/2 makes Tsallis at alpha the chi² penalty at
mu = alpha/|A|; the KL one is the same Gibbs form the registry's KL-regularised objectives target.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from opo_theory.bandit.enumerate import exact_batch
from opo_theory.objectives.opo import bounded_target
from opo_theory.validation import require_in_range, require_int, require_items


def chi2_optimum(rewards: Tensor, mu) -> Tensor:
    """argmax E_pi[r] - (mu/2) chi²(pi || uniform) per row: uniform x (1 + v*), v* = max(-1, (r - lambda*)/mu)."""
    s, k = rewards.shape
    logp_ref = torch.full_like(rewards, -math.log(k))
    batch = exact_batch(logp_ref, logp_ref, rewards)
    mu_b = mu.repeat_interleave(k) if isinstance(mu, Tensor) else mu
    v_star, _ = bounded_target(rewards.reshape(-1), batch, mu_b)
    return (1 + v_star.reshape(s, k)) / k


def sparsemax(scores: Tensor) -> Tensor:
    """Lee et al.'s sparse optimum: pi = max(x - tau(x), 0), tau from the sorted scores (the published formula)."""
    x, _ = scores.sort(-1, descending=True)
    k = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    cums = x.cumsum(-1)
    support = (1 + k * x > cums).sum(-1, keepdim=True)
    tau = (cums.gather(-1, support - 1) - 1) / support.to(x.dtype)
    return (scores - tau).clamp_min(0)


def softmax_optimum(rewards: Tensor, alpha) -> Tensor:
    """argmax E_pi[r] - alpha KL(pi || uniform) = argmax E_pi[r] + alpha H(pi): softmax(r / alpha)."""
    a = alpha[:, None] if isinstance(alpha, Tensor) else alpha
    return (rewards / a).softmax(-1)


def suboptimality(pi: Tensor, rewards: Tensor) -> Tensor:
    """max_a r(a) - E_pi[r] per row."""
    return rewards.max(-1).values - (pi * rewards).sum(-1)


def two_level_rewards(k: int, gaps: Tensor) -> Tensor:
    """One row per gap d: r = (1, 1 - d, ..., 1 - d) over k actions (the worst case of both bounds is here)."""
    r = (1 - gaps)[:, None].expand(-1, k).clone()
    r[:, 0] = 1.0
    return r


def sparse_vs_softmax(actions=(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), alpha: float = 0.1,
                      n_gaps: int = 400, random_instances: int = 200, seed: int = 0) -> dict:
    """Suboptimality of the three regularised optima per |A|: worst case over two-level rewards (gap grid in
    (0, 1]) and the mean over uniform random rewards; Tsallis/sparse at alpha (= chi² at mu = alpha/|A|),
    softmax at alpha, and chi² at the fixed mu = alpha (the OPO/GOPO convention: mu does not scale with |A|)."""
    require_items("actions", actions, lambda n, v: require_int(n, v, 2, 100_000), 100)
    require_in_range("alpha", alpha, 0.0, 10.0, low_open=True)
    require_int("n_gaps", n_gaps, 2, 100_000)
    require_int("random_instances", random_instances, 1, 100_000)
    gaps = torch.linspace(0, 1, n_gaps + 1, dtype=torch.float64)[1:]
    g = torch.Generator().manual_seed(seed)
    rows = []
    for k in actions:
        worst = two_level_rewards(k, gaps)
        rand = torch.rand(random_instances, k, generator=g, dtype=torch.float64)
        row = {"actions": k, "soft_bound": alpha * math.log(k), "sparse_bound": alpha * (k - 1) / (2 * k),
               "chi2_fixed_mu_bound": alpha * (k - 1) / 2}
        optima = {"softmax": lambda r: softmax_optimum(r, alpha),
                  "sparse": lambda r, k=k: chi2_optimum(r, alpha / k),
                  "chi2_fixed_mu": lambda r: chi2_optimum(r, alpha)}
        for name, opt in optima.items():
            sub = suboptimality(opt(worst), worst)
            i = int(sub.argmax())
            row[name] = {"worst": float(sub[i]), "worst_gap": float(gaps[i]),
                         "random_mean": float(suboptimality(opt(rand), rand).mean())}
        row["sparsemax_formula_max_abs_diff"] = float((sparsemax(worst / alpha) - optima["sparse"](worst)).abs().max())
        rows.append(row)
    return {"config": {"actions": list(actions), "alpha": alpha, "n_gaps": n_gaps,
                       "random_instances": random_instances, "seed": seed, "reference": "uniform",
                       "rewards": "two-level (1, 1-d, ..., 1-d) worst case over d; uniform [0,1] random"},
            "rows": rows, "summary": summarize(rows, alpha)}


def summarize(rows: list[dict], alpha: float) -> dict:
    """Slopes of the worst-case error against log|A| (in units of alpha) over the upper half of the |A|
    range, and whether every measured error lies within its published bound."""
    upper = rows[len(rows) // 2:]
    ks = [r["actions"] for r in upper]
    slope = lambda name: float(np.polyfit(np.log(ks), [r[name]["worst"] / alpha for r in upper], 1)[0])
    return {
        "softmax_slope_per_log_actions": slope("softmax"),
        "sparse_slope_per_log_actions": slope("sparse"),
        "chi2_fixed_mu_slope_per_log_actions": slope("chi2_fixed_mu"),
        "softmax_within_bound": all(r["softmax"]["worst"] <= r["soft_bound"] + 1e-12 for r in rows),
        "sparse_within_bound": all(r["sparse"]["worst"] <= r["sparse_bound"] + 1e-12 for r in rows),
        "sparse_max_over_actions": max(r["sparse"]["worst"] for r in rows),
        "softmax_max_over_actions": max(r["softmax"]["worst"] for r in rows),
        "sparse_formula_agrees": max(r["sparsemax_formula_max_abs_diff"] for r in rows),
    }
