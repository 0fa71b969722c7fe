"""Diagnostics shared by the bandits and the LM trainer (key table with formulas: docs/metrics.md).

batch_metrics: from a PolicyBatch alone (no backward). gradient_metrics: runs the backward of the
loss (leaving .grad exactly as loss.backward() would) and, when the objective reports its drive and
regularizer parts, one extra backward for the split. Non-finite norms are reported, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from opo_theory.objectives import DRIVE_KEY, REG_KEY, get
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.clipped import kl_penalty
from opo_theory.objectives.opo import OPO_FAMILY, OPOConfig, escort_weights
from opo_theory.objectives.reduce import response_weights, seq_logratio
from opo_theory.objectives.sampling import effective_sample_size
from opo_theory.objectives.shaping import informative_groups


def _f(x: Tensor) -> float:
    return float(x.detach().double().item())


def _wmean(x: Tensor, batch: PolicyBatch) -> float:
    """E_w[x] over responses in float64."""
    w = response_weights(batch).double()
    return _f((w * x.double()).sum() / w.sum())


def delta_metrics(delta: Tensor, batch: PolicyBatch) -> dict[str, float]:
    """delta/mean, delta/abs_max, delta/m2 = E[Delta²], delta/m3 = E[Delta³] of the sequence log-ratio."""
    d = delta.detach().double()
    m = lambda x: _wmean(x, batch)
    return {"delta/mean": m(d), "delta/abs_max": _f(d.abs().max()), "delta/m2": m(d**2),
            "delta/m3": m(d**3)}


def approx_metrics(delta: Tensor, batch: PolicyBatch, cfg: OPOConfig) -> dict[str, float]:
    """Exact (eq 15) minus surrogate (eq 19) loss, Lemma A.1's bound and whether it held."""
    exact, _ = get("opo-exact")(batch, cfg)
    surrogate, _ = get("opo")(batch, cfg)
    d = delta.detach().double()
    dinf = _f(d.abs().max())
    gap = (torch.expm1(d.clamp(max=20)) - d).abs().max()
    out = {"approx/loss_gap": _f(exact - surrogate), "approx/delta_inf": dinf,
           "approx/v_gap_max": _f(gap)}
    if dinf < 1:
        bound = 0.5 * dinf**2 * math.exp(dinf)
        out.update({"approx/lemma_bound": bound, "approx/lemma_holds": float(_f(gap) <= bound + 1e-12)})
    else:
        out.update({"approx/lemma_bound": math.nan, "approx/lemma_holds": math.nan})
    return out


def batch_metrics(batch: PolicyBatch, objective_name: str | None = None, config=None) -> dict[str, float]:
    """Every diagnostic computable from the batch: delta/, ratio/, kl/, chi2/, entropy/, reward/, approx/, weights/."""
    with torch.no_grad():
        mask = batch.mask.bool()
        log_r = (batch.logp - batch.logp_old).detach()[mask].double()
        r = torch.exp(log_r)
        out = {"ratio/mean": _f(r.mean()), "ratio/min": _f(r.min()), "ratio/max": _f(r.max())}
        x = -log_r  # log pi_old - log pi per token: KL(pi||pi_old) estimators
        for k in ("k1", "k2", "k3"):
            out[f"kl/{k}"] = _f(kl_penalty(x, k).mean())
        cfg = config if config is not None and objective_name in OPO_FAMILY else OPOConfig()
        delta = seq_logratio(batch, cfg.seq_logratio, cfg.delta_clamp)
        out.update(delta_metrics(delta, batch))
        rho2 = torch.exp(2 * seq_logratio(batch, "sum").double().clamp(max=350))
        out["chi2/seq"] = _wmean(rho2, batch) - 1
        if batch.entropy is not None:
            out["entropy/mean"] = _f((batch.entropy.detach() * batch.mask).sum() / batch.mask.sum())
        if batch.rewards is not None:
            out.update(reward_metrics(batch))
        if batch.rewards is not None or batch.advantages is not None:
            out.update(approx_metrics(delta, batch, cfg))
            if objective_name in OPO_FAMILY:
                out["weights/ess"] = _f(effective_sample_size(escort_weights(batch, cfg), batch))
    return out


def reward_metrics(batch: PolicyBatch) -> dict[str, float]:
    """reward/mean, reward/std and reward/frac_zero_std (groups whose rewards are all equal)."""
    r = batch.rewards.detach().double()
    return {"reward/mean": _f(r.mean()), "reward/std": _f(r.std(unbiased=False)),
            "reward/frac_zero_std": _f((~informative_groups(r, batch.group)).double().mean())}


def _flat(grads: Iterable[Tensor | None], params: list[Tensor]) -> Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                      for g, p in zip(grads, params, strict=True)])


def gradient_metrics(loss: Tensor, metrics: dict[str, Tensor], params: Iterable[Tensor], *,
                     split: bool = False, approx: Tensor | None = None) -> dict[str, float]:
    """Backward of ``loss`` (grads land in .grad) plus grad/norm, and optionally the drive/reg split
    (grad/norm_drive, grad/norm_reg, grad/cos_drive_reg: one extra backward) and approx/grad_cos
    (cosine between the gradients of ``loss`` and of ``approx``, e.g. the exact-ratio loss)."""
    params = [p for p in params if p.requires_grad]
    before = [None if p.grad is None else p.grad.detach().clone() for p in params]
    g_drive = g_approx = None
    has_parts = split and DRIVE_KEY in metrics and REG_KEY in metrics
    if has_parts:
        g_drive = _flat(torch.autograd.grad(metrics[DRIVE_KEY], params, retain_graph=True,
                                            allow_unused=True), params)
    if approx is not None:
        g_approx = _flat(torch.autograd.grad(approx, params, retain_graph=True, allow_unused=True), params)
    loss.backward()
    g_total = _flat([p.grad if b is None else p.grad - b for p, b in zip(params, before, strict=True)],
                    params)
    return split_metrics([g_total], None if g_drive is None else [g_drive],
                         None if g_approx is None else [g_approx])


def _norm(xs: list[Tensor]) -> float:
    return _f(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x.double()) for x in xs])))


def _dot(xs: list[Tensor], ys: list[Tensor]) -> float:
    return sum(_f(torch.dot(x.double().reshape(-1), y.double().reshape(-1))) for x, y in zip(xs, ys, strict=True))


def split_metrics(total: list[Tensor], drive: list[Tensor] | None = None,
                  approx: list[Tensor] | None = None) -> dict[str, float]:
    """From gradients given as lists of tensors (one flat tensor, or one per parameter): grad/norm; with the
    drive part's gradient, grad/norm_drive, grad/norm_reg (reg = total - drive) and grad/cos_drive_reg; with
    another loss's gradient, approx/grad_cos (its cosine with the total)."""
    out = {"grad/norm": _norm(total)}
    if drive is not None:
        reg = [t - d for t, d in zip(total, drive, strict=True)]
        nd, nr = _norm(drive), _norm(reg)
        out["grad/norm_drive"], out["grad/norm_reg"] = nd, nr
        out["grad/cos_drive_reg"] = _dot(drive, reg) / (nd * nr) if nd * nr > 0 else math.nan
    if approx is not None:
        na, nt = _norm(approx), out["grad/norm"]
        out["approx/grad_cos"] = _dot(approx, total) / (na * nt) if na * nt > 0 else math.nan
    return out


def response_efficiency(grad_norm: float, advantages: Tensor) -> float:
    """Gradient response efficiency ||grad|| / (½ (max A - min A)) (the paper's Exp 1); nan when A is constant."""
    spread = float(advantages.max() - advantages.min())
    return grad_norm / (0.5 * spread) if spread > 0 else math.nan
