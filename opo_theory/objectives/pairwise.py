"""Preference objectives on (chosen, rejected) pairs and SFT.

Margin h = Delta_w - Delta_l with Delta = sequence log-ratio against the reference (logp_ref when
the batch has one, otherwise the anchor logp_old).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.config import check_positive
from opo_theory.objectives.reduce import SEQ_LOGRATIO, aggregate, response_weights, seq_logratio
from opo_theory.objectives.registry import DRIVE_KEY, REG_KEY, register
from opo_theory.validation import require_choice

PHI_DELTA_CLAMP = 20.0  # chiPO's e^Delta: documented overflow guard on the sequence log-ratio


@dataclass(frozen=True)
class PairConfig:
    """beta: inverse temperature; seq_logratio: sum|mean (TRL's IPO averages per token)."""

    beta: float = field(default=0.1, metadata={"help": "inverse temperature on the margin h = Delta_w - Delta_l"})
    seq_logratio: str = field(default="sum", metadata={"help": "sequence log-ratio Delta = log pi/pi_ref: sum or "
                                                                "mean over the response's tokens (TRL's IPO: mean)"})

    def __post_init__(self) -> None:
        check_positive("beta", self.beta)
        require_choice("seq_logratio", self.seq_logratio, SEQ_LOGRATIO)


@dataclass(frozen=True)
class IPOConfig(PairConfig):
    seq_logratio: str = "mean"


@dataclass(frozen=True)
class ChiPOConfig(PairConfig):
    """r_max: the margin beta (phi(z_w) - phi(z_l)) is clipped to [-2 r_max, 2 r_max]."""

    r_max: float = field(default=10.0, metadata={"help": "the margin beta (phi(z_w) - phi(z_l)) is clipped to "
                                                         "[-2 r_max, 2 r_max]"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("r_max", self.r_max)


def _pair_deltas(batch: PolicyBatch, mode: str, clamp: float | None = None) -> tuple[Tensor, Tensor]:
    if batch.chosen is None:
        raise ValueError("pairwise objectives need batch.chosen and batch.rejected index tensors, got None")
    anchor = batch.logp_ref if batch.logp_ref is not None else batch.logp_old
    delta = seq_logratio(batch, mode, clamp, against=anchor)
    return delta[batch.chosen], delta[batch.rejected]


@register("dpo", PairConfig, "pairwise", "DPO: -log sigma(beta h)")
def dpo_loss(batch: PolicyBatch, cfg: PairConfig):
    """-log sigma(beta h), mean over pairs; d/dh = -beta sigma(-beta h)."""
    dw, dl = _pair_deltas(batch, cfg.seq_logratio)
    h = dw - dl
    loss = -F.logsigmoid(cfg.beta * h).mean()
    return loss, {"loss/total": loss.detach(), "pair/margin_mean": h.mean().detach(),
                  "pair/accuracy": (h > 0).float().mean()}


@register("ipo", IPOConfig, "pairwise", "IPO: (h - 1/(2 beta))²")
def ipo_loss(batch: PolicyBatch, cfg: IPOConfig):
    """(h - 1/(2 beta))² = [-h/beta] (drive) + [h² + 1/(4 beta²)] (regularizer), mean over pairs."""
    dw, dl = _pair_deltas(batch, cfg.seq_logratio)
    h = dw - dl
    drive = (-h / cfg.beta).mean()
    reg = (h * h + 1 / (4 * cfg.beta**2)).mean()
    loss = drive + reg
    return loss, {DRIVE_KEY: drive, REG_KEY: reg, "loss/total": loss.detach(),
                  "pair/margin_mean": h.mean().detach()}


@register("chipo", ChiPOConfig, "pairwise", "chiPO: DPO with link phi(z) = z + log z on z = pi/pi_ref")
def chipo_loss(batch: PolicyBatch, cfg: ChiPOConfig):
    """-log sigma(clip(beta (phi(e^Delta_w) - phi(e^Delta_l)), ±2 r_max)); Delta clamped at ±20."""
    dw, dl = _pair_deltas(batch, cfg.seq_logratio, PHI_DELTA_CLAMP)
    phi = lambda d: torch.exp(d) + d
    margin = (cfg.beta * (phi(dw) - phi(dl))).clamp(-2 * cfg.r_max, 2 * cfg.r_max)
    loss = -F.logsigmoid(margin).mean()
    return loss, {"loss/total": loss.detach(), "pair/margin_mean": margin.mean().detach()}


@dataclass(frozen=True)
class SFTConfig:
    """select: which responses are imitated — 'positive' (reward > 0), 'chosen' or 'all'."""

    select: str = field(default="positive", metadata={"help": "responses imitated: positive (reward > 0), "
                                                              "chosen (the pair's preferred one) or all"})

    def __post_init__(self) -> None:
        require_choice("select", self.select, ("positive", "chosen", "all"))


@register("sft", SFTConfig, "supervised", "SFT: -log pi(y) on correct/chosen responses, token-mean")
def sft_loss(batch: PolicyBatch, cfg: SFTConfig):
    """-E[log pi(y_t)] token-mean over the selected responses (0 with zero gradient if none has a token)."""
    if cfg.select == "all":
        keep = torch.ones(batch.n_responses, dtype=torch.bool, device=batch.logp.device)
    elif cfg.select == "chosen":
        if batch.chosen is None:
            raise ValueError("sft with select='chosen' needs batch.chosen, got None")
        keep = torch.zeros(batch.n_responses, dtype=torch.bool, device=batch.logp.device)
        keep[batch.chosen] = True
    else:
        if batch.rewards is None:
            raise ValueError("sft with select='positive' needs batch.rewards, got None")
        keep = batch.rewards > 0
    # responses without a counted token or with weight 0 add nothing to the token mean: drop them
    has_mass = keep & (batch.lengths > 0) & (response_weights(batch) > 0)
    if not has_mass.any():
        loss = (batch.logp * 0).sum()
        return loss, {"loss/total": loss.detach(), "sft/frac_selected": keep.float().mean()}
    kept = batch.select(torch.nonzero(has_mass).flatten())
    loss = aggregate(-kept.logp, kept, "token-mean")
    return loss, {"loss/total": loss.detach(), "sft/frac_selected": keep.float().mean()}
