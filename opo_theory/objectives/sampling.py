"""Sampling geometries: the four published definitions of OPO's driving field.

Each returns the uncentred weights w [B]; ``drive`` centres them (eq 8: g = w - E[w]).
alpha directions differ and are kept as published:
  paper  (v5, eq 7)   w = exp((1-alpha) A) [* pi_k^-(1-alpha)]; alpha -> 1 uniform (conservative),
                      alpha -> 0 aggressive.
  code   (released)   w = q^alpha p^(1-alpha) renormalized per group, q = softmax_G(A/beta_r),
                      p = softmax_G(Delta/tau); alpha -> 1 aggressive (OPPOSITE of the paper),
                      drive scaled by 1/alpha.
  gopo                w = A (no escort).
  wgopo               w = (1-alpha) A + alpha A e^A.
Half-precision inputs reach these functions upcast to float32 (objectives.batch.compute_batch).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from opo_theory.objectives.batch import HALF_DTYPES, PolicyBatch
from opo_theory.objectives.reduce import (
    group_extreme,
    group_sum,
    n_groups,
    response_weights,
    safe_lengths,
    seq_logratio,
)
from opo_theory.validation import require_choice

GEOMETRIES = ("paper", "code", "gopo", "wgopo")
PI_FACTORS = ("none", "sum", "mean")
# Documented overflow guard of the escort weights ('paper': log-weight clamped at 50; 'wgopo': A e^A
# clamped at e^50). The drive multiplies v <= e^20 (opo.EXACT_DELTA_CLAMP) in a sum over responses:
# e^(50 + 20) * 1e5 (responses x weight) ~ 2.5e35 stays below float32's 3.4e38 (e^80 did not).
LOG_WEIGHT_CLAMP = 50.0


def _group_softmax(x: Tensor, group: Tensor) -> Tensor:
    """softmax of x within each group (stable: the group max is subtracted)."""
    n = n_groups(group)
    e = torch.exp(x - group_extreme(x, group, "amax", n).index_select(0, group))
    return e / group_sum(e, group, n).index_select(0, group)


def paper_weights(adv: Tensor, batch: PolicyBatch, alpha, pi_factor: str = "none") -> Tensor:
    """Eq 7: w = exp((1-alpha) A) * sg(pi_k)^-(1-alpha); pi_k as the sequence log-prob 'sum' or per-token 'mean'.

    The log-weight is clamped at LOG_WEIGHT_CLAMP (overflow guard; A > 83 at alpha = 0.4).
    """
    require_choice("pi_factor", pi_factor, PI_FACTORS)
    log_w = (1 - alpha) * adv
    if pi_factor != "none":
        logp_old = (batch.logp_old * batch.mask).sum(-1).detach()
        if pi_factor == "mean":
            logp_old = logp_old / safe_lengths(batch)
        log_w = log_w - (1 - alpha) * logp_old
    return torch.exp(log_w.clamp(max=LOG_WEIGHT_CLAMP))


CODE_SCORE_CLAMP = 10.0   # released code: the anchored score Delta/tau is clamped to ±10


def code_weights(adv: Tensor, batch: PolicyBatch, alpha, beta_r: float, tau: float,
                 seq_mode: str = "sum", delta_clamp: float | None = None) -> Tensor:
    """Released code: q^alpha p^(1-alpha) per group, q = softmax(A/beta_r), p = softmax(clamp(sg(Delta)/tau, ±10)).

    Delta is the sequence log-ratio of the objective's own ``seq_logratio`` and ``delta_clamp``; the
    released run uses the per-token mean clamped to ±5 (``seq_logratio='mean', delta_clamp=5``).
    """
    q = _group_softmax(adv / beta_r, batch.group)
    delta = seq_logratio(batch, seq_mode, delta_clamp).detach()
    p = _group_softmax((delta / tau).clamp(-CODE_SCORE_CLAMP, CODE_SCORE_CLAMP), batch.group)
    w = q.clamp_min(1e-30) ** alpha * p.clamp_min(1e-30) ** (1 - alpha)
    return w / group_sum(w, batch.group).index_select(0, batch.group)


def weights(geometry: str, adv: Tensor, batch: PolicyBatch, alpha, *, pi_factor: str = "none",
            beta_r: float = 0.15, tau: float = 0.5, seq_mode: str = "sum",
            delta_clamp: float | None = None) -> Tensor:
    """Uncentred driving weights w [B] of a named sampling geometry (seq_mode/delta_clamp: 'code' only)."""
    require_choice("sampling geometry", geometry, GEOMETRIES)
    if adv.dtype in HALF_DTYPES:     # diagnostics pass raw batches: e^50 does not fit in float16
        adv = adv.float()
    if geometry == "paper":
        return paper_weights(adv, batch, alpha, pi_factor)
    if geometry == "code":
        return code_weights(adv, batch, alpha, beta_r, tau, seq_mode, delta_clamp)
    if geometry == "gopo":
        return adv
    # A e^A overflows for A > ~80 even with e^A clamped: cap the product (inf.clamp -> the cap)
    a_exp_a = (adv * torch.exp(adv.clamp(max=LOG_WEIGHT_CLAMP))).clamp(max=math.exp(LOG_WEIGHT_CLAMP))
    return (1 - alpha) * adv + alpha * a_exp_a


def scale_drive(g: Tensor, cfg) -> Tensor:
    """The released 'code' geometry scales its centred drive by 1/alpha; the others keep g (eq 8)."""
    return g / cfg.alpha if cfg.geometry == "code" else g


def effective_sample_size(w: Tensor, batch: PolicyBatch) -> Tensor:
    """ESS fraction (sum w)² / (n sum w²) of the escort weights (1 = uniform).

    ESS is scale-invariant: w is first divided by the power of two just above max|w| (exact in
    floating point), so escort weights up to e^50 do not overflow w².
    """
    rw = response_weights(batch)
    w = w.float() if w.dtype in HALF_DTYPES else w
    w = torch.ldexp(w, -torch.frexp(w.abs().max()).exponent)
    return (rw * w).sum() ** 2 / ((rw * w * w).sum() * rw.sum()).clamp_min(1e-30)
