"""The clipped policy-gradient family: grpo, dr-grpo, dapo, gspo, ppo-kl.

Token loss l = -min(r A, clip(r, 1-eps_low, 1+eps_high) A), r = pi/pi_old per token; optional
verl dual clip (A < 0: l = min(l, -c A)). Aggregation is a separate, named choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from opo_theory.objectives.advantages import advantages
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.config import check_optional_positive, check_positive
from opo_theory.objectives.reduce import (
    AGGREGATIONS,
    STD_KINDS,
    aggregate,
    seq_logratio,
)
from opo_theory.objectives.registry import DRIVE_KEY, REG_KEY, register
from opo_theory.validation import require_choice, require_nonnegative, require_positive

KL_ESTIMATORS = ("k1", "k2", "k3", "k3+", "abs")


@dataclass(frozen=True)
class ClipConfig:
    """eps_low/eps_high clip range; advantage zscore|centered; dual_clip c (None = off).

    adv_std: the z-score's group std, 'sample' (n-1 as torch.std: TRL and verl) or 'population' (n).

    aggregation: one of AGGREGATIONS; norm_len: the constant of seq-mean-token-sum-norm
    (None = the batch's T). The denominator under micro-batching is the batch's ``normalizer``.
    """

    eps_low: float = field(default=0.2, metadata={"help": "ratio clipped below at 1 - eps_low where A < 0"})
    eps_high: float = field(default=0.2, metadata={"help": "ratio clipped above at 1 + eps_high where A > 0"})
    advantage: str = field(default="zscore", metadata={"help": "zscore (R - mean)/(std + adv_eps) of the group, or "
                                                               "centered R - mean"})
    adv_eps: float = field(default=1e-6, metadata={"help": "eps of the z-score's denominator (TRL 1e-4, verl 1e-6)"})
    adv_std: str = field(default="sample", metadata={"help": "group std of the z-score: sample (n-1, TRL and verl) "
                                                            "or population (n)"})
    aggregation: str = field(default="seq-mean-token-mean", metadata={
        "help": f"token loss reduction: {', '.join(AGGREGATIONS)}"})
    dual_clip: float | None = field(default=None, metadata={"help": "dual clip c > 1: the loss of an A < 0 token "
                                                                    "is capped at -c A (None: off; verl uses 3)"})
    norm_len: float | None = field(default=None, metadata={"help": "constant of seq-mean-token-sum-norm (None: "
                                                                   "the batch's T)"})

    def __post_init__(self) -> None:
        require_nonnegative("eps_low", self.eps_low)
        require_nonnegative("eps_high", self.eps_high)
        require_positive("adv_eps", self.adv_eps)
        check_optional_positive("norm_len", self.norm_len)
        require_choice("aggregation", self.aggregation, AGGREGATIONS)
        require_choice("advantage", self.advantage, ("zscore", "centered"))
        require_choice("adv_std", self.adv_std, STD_KINDS)
        if self.dual_clip is not None and self.dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1 (verl uses 3), got {self.dual_clip!r}")


@dataclass(frozen=True)
class DrGRPOConfig(ClipConfig):
    advantage: str = "centered"
    aggregation: str = "seq-mean-token-sum-norm"


@dataclass(frozen=True)
class DAPOConfig(ClipConfig):
    eps_high: float = 0.28
    aggregation: str = "token-mean"


@dataclass(frozen=True)
class GSPOConfig(ClipConfig):
    """GSPO's own paper: eps 3e-4 / 4e-4 on the geometric-mean sequence ratio."""

    eps_low: float = 3e-4
    eps_high: float = 4e-4


@dataclass(frozen=True)
class PPOKLConfig(ClipConfig):
    """beta: KL coefficient; kl: k1|k2|k3|k3+ (k3 value with k2 gradient)|abs (verl's |x|); kl_clamp: ±clamp of x (verl 10)."""

    beta: float = field(default=0.04, metadata={"help": "coefficient of the per-token KL(pi||pi_ref) penalty"})
    kl: str = field(default="k3", metadata={"help": "per-token KL estimator of x = log pi_ref - log pi: k1 -x, "
                                                    "k2 x²/2, k3 e^x - x - 1, k3+ (k3 value, k2 gradient), abs |x|"})
    kl_clamp: float | None = field(default=10.0, metadata={"help": "x clamped to ±kl_clamp before the estimator "
                                                                   "(None: off; verl 10)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("beta", self.beta)
        require_choice("kl estimator", self.kl, KL_ESTIMATORS)
        check_optional_positive("kl_clamp", self.kl_clamp)


def clipped_surrogate(ratio: Tensor, adv: Tensor, cfg: ClipConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """-min(r A, clip(r) A) elementwise (A broadcast), with dual clip, and clip fractions by A's sign."""
    clipped = ratio.clamp(1 - cfg.eps_low, 1 + cfg.eps_high)
    loss = torch.maximum(-ratio * adv, -clipped * adv)
    if cfg.dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -cfg.dual_clip * adv), loss)
    low = (adv < 0) & (ratio < 1 - cfg.eps_low)     # clip active: gradient zeroed on the low side
    high = (adv > 0) & (ratio > 1 + cfg.eps_high)
    return loss, {"low": low, "high": high}


def _clip_metrics(flags: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
    m = mask.bool()
    n = m.sum().clamp_min(1)
    return {"clip/low_frac": ((flags["low"] & m).sum() / n).float(),
            "clip/high_frac": ((flags["high"] & m).sum() / n).float()}


def token_pg(batch: PolicyBatch, cfg: ClipConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """Token-level clipped PG loss aggregated by cfg.aggregation, with its clip fractions."""
    adv = advantages(batch, cfg.advantage, cfg.adv_eps, cfg.adv_std).detach()
    ratio = torch.exp(batch.logp - batch.logp_old)
    tok, flags = clipped_surrogate(ratio, adv[:, None].expand_as(ratio), cfg)
    loss = aggregate(tok, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    return loss, {"loss/total": loss.detach(), **_clip_metrics(flags, batch.mask)}


@register("grpo", ClipConfig, "token", "GRPO: clipped token PG, z-scored group A, seq-mean-token-mean")
def grpo_loss(batch: PolicyBatch, cfg: ClipConfig):
    """l = -min(r A, clip(r, 1±0.2) A), A = (R - mean_G R)/(std_G R + eps), seq-mean-token-mean."""
    return token_pg(batch, cfg)


@register("dr-grpo", DrGRPOConfig, "token", "Dr. GRPO: centred A, seq-mean-token-sum-norm")
def dr_grpo_loss(batch: PolicyBatch, cfg: DrGRPOConfig):
    """GRPO without std in A, aggregated as sum over tokens / constant length."""
    return token_pg(batch, cfg)


@register("dapo", DAPOConfig, "token", "DAPO: clip-higher (0.2/0.28), token-mean")
def dapo_loss(batch: PolicyBatch, cfg: DAPOConfig):
    """GRPO's token loss with eps_high = 0.28 and token-mean over the whole batch."""
    return token_pg(batch, cfg)


@register("gspo", GSPOConfig, "sequence", "GSPO: clipped geometric-mean sequence ratio")
def gspo_loss(batch: PolicyBatch, cfg: GSPOConfig):
    """s_i = exp(mean_t log r), l_i = -min(s A, clip(s, 1-3e-4, 1+4e-4) A) on each of the response's tokens,
    aggregated by cfg.aggregation (seq-mean-token-mean: the mean of l_i over responses, a response with no
    counted token giving 0; token-mean: l_i weighted by length, TRL's default loss_type 'dapo')."""
    adv = advantages(batch, cfg.advantage, cfg.adv_eps, cfg.adv_std).detach()
    s = torch.exp(seq_logratio(batch, "mean"))
    per_seq, flags = clipped_surrogate(s, adv, cfg)
    loss = aggregate(per_seq[:, None].expand_as(batch.mask), batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    ones = torch.ones_like(s)
    return loss, {"loss/total": loss.detach(),
                  **_clip_metrics({k: v[:, None] for k, v in flags.items()}, ones[:, None])}


def kl_penalty(x: Tensor, kind: str) -> Tensor:
    """Per-token KL estimator of x = log pi_ref - log pi: k1 = -x, k2 = x²/2, k3 = e^x - x - 1, k3+, abs = |x|."""
    k2 = 0.5 * x * x
    if kind == "k1":
        return -x
    if kind == "abs":
        return x.abs()
    if kind == "k2":
        return k2
    k3 = torch.expm1(x) - x
    return k3 if kind == "k3" else k2 + (k3 - k2).detach()


@register("ppo-kl", PPOKLConfig, "token", "PPO clip + beta KL(pi||pi_ref) per token (k1/k2/k3/k3+/abs)",
          needs_reference=True)
def ppo_kl_loss(batch: PolicyBatch, cfg: PPOKLConfig):
    """l = -min(r A, clip(r) A) + beta k(log pi_ref - log pi), both aggregated the same way."""
    if batch.logp_ref is None:
        raise ValueError("ppo-kl needs batch.logp_ref (log-probs of the reference policy), got None")
    pg, metrics = token_pg(batch, cfg)
    x = batch.logp_ref - batch.logp
    if cfg.kl_clamp is not None:
        x = x.clamp(-cfg.kl_clamp, cfg.kl_clamp)
    kl = aggregate(cfg.beta * kl_penalty(x, cfg.kl), batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    loss = pg + kl
    metrics.update({DRIVE_KEY: pg, REG_KEY: kl, "loss/total": loss.detach()})
    return loss, metrics


