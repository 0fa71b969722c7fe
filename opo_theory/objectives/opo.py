"""The OPO family: opo (eq 19 surrogate), opo-exact (eq 15), gopo, gopo-bounded (GOPO, arXiv 2602.21269).

Penalty convention: (mu/2) E[v²] = mu x (½ Pearson chi²). Loss = drive + reg with
drive = -E[g v] and reg = (mu/2) E[v²], v = Delta (surrogate) or e^Delta - 1 (exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from opo_theory.objectives.advantages import advantages
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.config import (
    check_optional_positive,
    check_positive,
    check_unit_interval,
)
from opo_theory.objectives.reduce import (
    SEQ_LOGRATIO,
    center,
    group_extreme,
    group_sum,
    mean_over_responses,
    n_groups,
    response_weights,
    seq_logratio,
)
from opo_theory.objectives.registry import DRIVE_KEY, REG_KEY, available, get, register
from opo_theory.objectives.sampling import GEOMETRIES, PI_FACTORS, scale_drive, weights
from opo_theory.validation import require_choice

NORMALIZATIONS = ("mean", "released")
EXACT_DELTA_CLAMP = 20.0  # e^40 stays finite in float32: documented overflow guard of the exact forms


# One line per hyperparameter, printed by `opo-theory objectives NAME` and `train --list-settings`.
HELP = {
    "alpha": "escort exponent: w~ ∝ (e^A/pi_k)^(1-alpha); 1 uniform, 0 P*/pi_k",
    "mu": "chi² stiffness: penalty (mu/2) E[v²]; step ratio 1 + g/mu",
    "geometry": "driving weights w~: paper (eq 7), code (released; its alpha runs the other way), gopo (w = A), "
                "wgopo ((1-alpha) A + alpha A e^A)",
    "center": "g = w~ - E[w~] (eq 8) with E over each prompt's group (group) or the whole batch (batch)",
    "seq_logratio": "sequence log-ratio Delta = log pi/pi_k summed over tokens (sum) or their mean (mean)",
    "delta_clamp": "clamp Delta to ±value before use (None: off; the released code uses 5)",
    "pi_factor": "paper geometry: times sg(pi_k)^-(1-alpha) from the sequence log-prob (sum), per-token (mean) "
                 "or not (none)",
    "beta_r": "code geometry: reward temperature, q = softmax_group(A / beta_r)",
    "tau": "code geometry: anchor temperature, p = softmax_group(Delta / tau)",
    "normalization": "how the drive term -E[g v] is reduced (the penalty is always a mean over responses): mean "
                     "(over responses, eq 19) or released (summed within each prompt group, then averaged over "
                     "groups: G times the mean for groups of G; the released code)",
}


@dataclass(frozen=True)
class OPOConfig:
    """alpha, mu: paper v5 values. geometry: paper|code|gopo|wgopo. seq_logratio: sum|mean.

    pi_factor (paper geometry): none|sum|mean — include sg(pi_k)^-(1-alpha) from the sequence
    log-prob ('sum' can overflow and is clamped at exp(50); 'mean' is length-normalized).
    delta_clamp: optional ±clamp of the sequence log-ratio (None = off; the released code uses 5).
    normalization (the drive term's reduction; the name is kept because run directories' config.json and the
    named variants record it): 'mean' (drive and penalty both averaged over responses: eq 19) or 'released' (the
    released code: the drive summed within each group, then averaged over groups; the penalty
    averaged over responses). With groups of G responses, released(mu) = G x mean(mu / G): the same
    minimiser as the registry's loss at mu/G, with G times its gradient. To run OPO as released:
    geometry='code', seq_logratio='mean', delta_clamp=5, normalization='released', alpha=0.75,
    mu=0.5, beta_r=0.15, tau=0.5 (code alpha runs the other way: paper alpha 0.4 = code alpha 0.6).
    """

    alpha: Any = field(default=0.4, metadata={"help": HELP["alpha"]})
    mu: Any = field(default=1.0, metadata={"help": HELP["mu"]})
    geometry: str = field(default="paper", metadata={"help": HELP["geometry"]})
    center: str = field(default="group", metadata={"help": HELP["center"]})
    seq_logratio: str = field(default="sum", metadata={"help": HELP["seq_logratio"]})
    delta_clamp: float | None = field(default=None, metadata={"help": HELP["delta_clamp"]})
    pi_factor: str = field(default="none", metadata={"help": HELP["pi_factor"]})
    beta_r: float = field(default=0.15, metadata={"help": HELP["beta_r"]})
    tau: float = field(default=0.5, metadata={"help": HELP["tau"]})
    normalization: str = field(default="mean", metadata={"help": HELP["normalization"]})

    def __post_init__(self) -> None:
        require_choice("sampling geometry", self.geometry, GEOMETRIES)
        require_choice("normalization", self.normalization, NORMALIZATIONS)
        require_choice("seq_logratio", self.seq_logratio, SEQ_LOGRATIO)
        require_choice("pi_factor", self.pi_factor, PI_FACTORS)
        check_positive("mu", self.mu)
        check_unit_interval("alpha", self.alpha, low_open=self.geometry == "code")
        require_choice("center", self.center, ("group", "batch"))
        check_positive("beta_r", self.beta_r)
        check_positive("tau", self.tau)
        check_optional_positive("delta_clamp", self.delta_clamp)


@dataclass(frozen=True)
class GOPOConfig(OPOConfig):
    """GOPO: centred A as the drive (no escort), exact ratio, released clamp ±5 on a mean log-ratio."""

    mu: Any = field(default=0.5, metadata={"help": HELP["mu"]})
    geometry: str = field(default="gopo", metadata={"help": HELP["geometry"]})
    seq_logratio: str = field(default="mean", metadata={"help": HELP["seq_logratio"]})
    delta_clamp: float | None = field(default=5.0, metadata={"help": HELP["delta_clamp"]})


def escort_weights(batch: PolicyBatch, cfg: OPOConfig) -> Tensor:
    """Uncentred w~ [B] of cfg's sampling geometry from the group-centred advantages (eq 7)."""
    return weights(cfg.geometry, advantages(batch, "centered"), batch, cfg.alpha, pi_factor=cfg.pi_factor,
                   beta_r=cfg.beta_r, tau=cfg.tau, seq_mode=cfg.seq_logratio, delta_clamp=cfg.delta_clamp)


def opo_drive(batch: PolicyBatch, cfg: OPOConfig) -> Tensor:
    """g = w~ - E[w~] (eq 8), detached: the drive is a fixed target within an outer iteration.

    A batch carrying a precomputed ``drive`` (whole groups, computed elsewhere) uses it as given."""
    if batch.drive is not None:
        return batch.drive.detach()
    return scale_drive(center(escort_weights(batch, cfg), batch, cfg.center), cfg).detach()


def fluctuation(batch: PolicyBatch, cfg: OPOConfig, exact: bool) -> Tensor:
    """v_i: Delta_i (surrogate) or e^Delta_i - 1 (exact, Delta clamped at ±20 unless a tighter clamp is set)."""
    clamp = cfg.delta_clamp
    if exact:
        clamp = EXACT_DELTA_CLAMP if clamp is None else min(clamp, EXACT_DELTA_CLAMP)
    delta = seq_logratio(batch, cfg.seq_logratio, clamp)
    return torch.expm1(delta) if exact else delta


def _work_dissipation(g: Tensor, v: Tensor, batch: PolicyBatch, cfg: OPOConfig):
    """Eq 15/19 per batch: loss = -E[g v] + (mu/2) E[v²], returned with its parts.

    normalization='released' multiplies the drive by the mean group size B / (groups present) (a sum within
    each group, averaged over groups) and leaves the penalty a mean over responses.
    """
    drive_term = mean_over_responses(-g * v, batch, batch.normalizer)
    if cfg.normalization == "released":
        drive_term = drive_term * (batch.n_responses / batch.group.unique().numel())
    reg_term = mean_over_responses(cfg.mu / 2 * v * v, batch, batch.normalizer)
    loss = drive_term + reg_term
    return loss, {DRIVE_KEY: drive_term, REG_KEY: reg_term, "loss/total": loss.detach(),
                  "drive/abs_mean": mean_over_responses(g.abs(), batch).detach()}


@register("opo", OPOConfig, "sequence", "OPO log-ratio surrogate (eq 19): -E[g Delta] + mu/2 E[Delta²]",
          twin="opo-exact", has_opo_drive=True)
def opo_loss(batch: PolicyBatch, cfg: OPOConfig):
    """Eq 19: L = -E[g Delta] + (mu/2) E[Delta²] over responses, g the centred escort drive."""
    return _work_dissipation(opo_drive(batch, cfg), fluctuation(batch, cfg, False), batch, cfg)


@register("opo-exact", OPOConfig, "sequence", "OPO in ratio coordinates (eq 15): v = e^Delta - 1",
          twin="opo", has_opo_drive=True)
def opo_exact_loss(batch: PolicyBatch, cfg: OPOConfig):
    """Eq 15: L = -E[g v] + (mu/2) E[v²] with the exact v = e^Delta - 1."""
    return _work_dissipation(opo_drive(batch, cfg), fluctuation(batch, cfg, True), batch, cfg)


@register("gopo", GOPOConfig, "sequence", "GOPO: -(1/G) sum [A rho - mu/2 (rho - 1)²], centred A",
          has_opo_drive=True)
def gopo_loss(batch: PolicyBatch, cfg: GOPOConfig):
    """GOPO: L = -E[(A - E A)(rho - 1)] + (mu/2) E[(rho - 1)²] (same gradient as with A rho)."""
    return _work_dissipation(opo_drive(batch, cfg), fluctuation(batch, cfg, True), batch, cfg)


def bounded_target(g: Tensor, batch: PolicyBatch, mu, iters: int = 100) -> tuple[Tensor, Tensor]:
    """GOPO bounded projection: v* = max(-1, (g - lambda*)/mu), E_G[v*] = 0 per group (bisection).

    lambda* lies in [E_G g, max_G g + mu]; returns (v* [B], lambda* per response [B]).
    """
    g64 = g.detach().double()
    mu64 = mu.double() if isinstance(mu, Tensor) else torch.tensor(float(mu), dtype=torch.float64)
    w = response_weights(batch).double()
    grp = batch.group
    n = n_groups(grp)
    # a group of total weight 0 has no constraint (its v* is multiplied by w = 0): avoid 0/0
    wsum = group_sum(w, grp, n).clamp_min(torch.finfo(torch.float64).tiny)
    gmean = group_sum(w * g64, grp, n) / wsum
    mu_b = mu64.expand_as(g64)
    lo = gmean
    hi = group_extreme(g64, grp, "amax", n) + group_extreme(mu_b.contiguous(), grp, "amax", n)
    for _ in range(iters):
        mid = (lo + hi) / 2
        v = torch.clamp((g64 - mid.index_select(0, grp)) / mu_b, min=-1.0)
        positive = group_sum(w * v, grp, n) > 0
        lo, hi = torch.where(positive, mid, lo), torch.where(positive, hi, mid)
    lam = ((lo + hi) / 2).index_select(0, grp)
    v_star = torch.clamp((g64 - lam) / mu_b, min=-1.0)
    return v_star.to(g.dtype), lam.to(g.dtype)


def bounded_drive(batch: PolicyBatch, cfg: GOPOConfig) -> tuple[Tensor, Tensor | None]:
    """gopo-bounded's drive mu v* (v* = max(-1, (g - lambda*)/mu)) and lambda* per response
    (None when the batch carries a precomputed drive, already mu v*)."""
    if batch.drive is not None:
        return batch.drive.detach(), None
    v_star, lam = bounded_target(opo_drive(batch, cfg), batch, cfg.mu)
    return cfg.mu * v_star, lam


@register("gopo-bounded", GOPOConfig, "sequence",
          "GOPO bounded: (mu/2) E[(rho - rho_target)²], rho_target = 1 + max(-1, (A - lambda*)/mu)",
          has_opo_drive=True)
def gopo_bounded_loss(batch: PolicyBatch, cfg: GOPOConfig):
    """(mu/2) E[(v - v*)²] - (mu/2) E[v*²] = -mu E[v* v] + (mu/2) E[v²]; equals gopo when lambda* = 0."""
    d, lam = bounded_drive(batch, cfg)
    loss, metrics = _work_dissipation(d, fluctuation(batch, cfg, True), batch, cfg)
    if lam is not None:
        metrics["gopo/lambda_mean"] = mean_over_responses(lam, batch).detach()
        metrics["gopo/frac_zeroed"] = mean_over_responses((d <= -cfg.mu).to(d.dtype), batch).detach()
    return loss, metrics


def whole_group_drive(name: str, batch: PolicyBatch, cfg: OPOConfig) -> Tensor:
    """[B] the drive objective ``name`` of the OPO family computes on ``batch`` (whole groups): pass
    it as ``PolicyBatch.drive`` to a micro-batch that holds only parts of those groups."""
    if not get(name).has_opo_drive:
        raise ValueError(f"{name!r} has no OPO drive; allowed: {', '.join(available(has_opo_drive=True))}")
    return bounded_drive(batch, cfg)[0] if name == "gopo-bounded" else opo_drive(batch, cfg)
