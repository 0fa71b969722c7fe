"""PolicyBatches for bandits: exact enumeration of arms (weights pi_k) or sampled groups."""

from __future__ import annotations

import torch
from torch import Tensor

from opo_theory.objectives import PolicyBatch


def exact_batch(logp: Tensor, logp_old: Tensor, rewards: Tensor, **extra) -> PolicyBatch:
    """One group per row of [S, K] log-probs: every arm is a one-token response weighted by pi_k(arm).

    Then each objective's response means are exact expectations under pi_k (per row).
    """
    s, k = logp.shape
    return PolicyBatch(
        logp=logp.reshape(-1, 1), logp_old=logp_old.detach().reshape(-1, 1),
        mask=torch.ones(s * k, 1, dtype=logp.dtype, device=logp.device),
        group=torch.arange(s, device=logp.device).repeat_interleave(k),
        rewards=rewards.reshape(-1).to(logp.dtype), sample_weight=logp_old.detach().exp().reshape(-1),
        **{key: (v.reshape(-1, 1) if key in ("logp_ref", "entropy") else v) for key, v in extra.items()})


def sampled_batch(logp_all: Tensor, logp_old_all: Tensor, arms: Tensor, rewards: Tensor,
                  **extra) -> PolicyBatch:
    """G sampled arms per row [S, G]: one group per row, uniform weights (Monte Carlo)."""
    s, g = arms.shape
    pick = lambda x: torch.gather(x, 1, arms).reshape(-1, 1)
    return PolicyBatch(
        logp=pick(logp_all), logp_old=pick(logp_old_all.detach()),
        mask=torch.ones(s * g, 1, dtype=logp_all.dtype, device=logp_all.device),
        group=torch.arange(s, device=arms.device).repeat_interleave(g),
        rewards=rewards.reshape(-1).to(logp_all.dtype), **extra)


def per_row(hyper, rows: int, k: int, device=None) -> Tensor | float:
    """Broadcast a per-row hyperparameter [S] to one value per response [S*k] (floats pass through)."""
    if isinstance(hyper, Tensor):
        return hyper.to(device).repeat_interleave(k)
    return hyper
