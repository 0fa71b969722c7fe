"""Diagnostics shared by the bandits and the LM trainer (key table with formulas: docs/metrics.md).

batch_metrics: from a PolicyBatch alone (no backward). update_gradient_metrics: from the gradient the
caller's backward left in .grad, plus (torch.autograd.grad) the drive part's gradient for the drive/reg
split and another loss's gradient for a cosine; gradient_metrics runs the backward first, for callers whose
loop does not. Gradients are reduced one block at a time (gradient_sums): no flat or float64 copy of a whole
gradient. Non-finite norms are reported, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from opo_theory.objectives import DRIVE_KEY, REG_KEY, get
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.clipped import kl_penalty
from opo_theory.objectives.opo import OPOConfig, escort_weights
from opo_theory.objectives.reduce import response_weights, seq_logratio
from opo_theory.objectives.sampling import effective_sample_size
from opo_theory.objectives.shaping import informative_per_group


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
        opo = objective_name is not None and get(objective_name).has_opo_drive
        cfg = config if config is not None and opo else OPOConfig()
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
            if opo:
                out["weights/ess"] = _f(effective_sample_size(escort_weights(batch, cfg), batch))
    return out


def frac_zero_std(rewards: Tensor, group: Tensor) -> float:
    """reward/frac_zero_std: the share of groups whose rewards are all equal (max = min: no signal for a
    group-relative objective), over the rewards given (the ones the objective sees), in their dtype."""
    r = rewards.detach()
    flat = ~informative_per_group(r, group)
    return float(flat.to(r.dtype if r.is_floating_point() else torch.float32).mean())


def reward_metrics(batch: PolicyBatch) -> dict[str, float]:
    """reward/mean, reward/std and reward/frac_zero_std (frac_zero_std)."""
    r = batch.rewards.detach().double()
    return {"reward/mean": _f(r.mean()), "reward/std": _f(r.std(unbiased=False)),
            "reward/frac_zero_std": frac_zero_std(batch.rewards, batch.group)}


BLOCK = 1 << 20     # elements cast to float64 at a time: no gradient is ever copied whole (flat or float64)


def _block(x: Tensor | None, lo: int, hi: int, like: Tensor) -> Tensor:
    if x is None:
        return torch.zeros(min(hi, like.numel()) - lo, dtype=torch.float64, device=like.device)
    return x.detach().reshape(-1)[lo:hi].double()


def gradient_sums(total: list[Tensor | None], other: list[Tensor | None] | None = None, *,
                  part: bool = False) -> dict[str, float]:
    """float64 sums over the elements of gradients given one tensor per parameter (None: zero), BLOCK elements
    at a time: ``tt`` = |t|²; with ``other`` = o, ``oo`` = |o|² and ``ot`` = <o, t>, and when o is a part of t
    (``part``, the rest r = t - o) also ``rr`` = |r|² and ``or`` = <o, r>."""
    keys = ("tt",) if other is None else ("tt", "oo", "ot") + (("rr", "or") if part else ())
    others = [None] * len(total) if other is None else other
    acc = None
    for t, o in zip(total, others, strict=True):
        like = t if t is not None else o
        if like is None:
            continue
        if acc is None:
            acc = torch.zeros(len(keys), dtype=torch.float64, device=like.device)
        for lo in range(0, like.numel(), BLOCK):
            tb = _block(t, lo, lo + BLOCK, like)
            if other is None:
                acc[0] += torch.dot(tb, tb)
                continue
            ob = _block(o, lo, lo + BLOCK, like)
            row = [torch.dot(tb, tb), torch.dot(ob, ob), torch.dot(ob, tb)]
            if part:
                rb = tb - ob
                row += [torch.dot(rb, rb), torch.dot(ob, rb)]
            acc += torch.stack(row)
    return dict(zip(keys, [0.0] * len(keys) if acc is None else acc.tolist(), strict=True))   # one sync


def _cos(dot: float, sq_a: float, sq_b: float) -> float:
    return dot / (math.sqrt(sq_a) * math.sqrt(sq_b)) if sq_a * sq_b > 0 else math.nan


def drive_metrics(sums: dict[str, float]) -> dict[str, float]:
    """grad/norm_drive, grad/norm_reg, grad/cos_drive_reg from gradient_sums(total, drive, part=True)."""
    return {"grad/norm_drive": math.sqrt(sums["oo"]), "grad/norm_reg": math.sqrt(sums["rr"]),
            "grad/cos_drive_reg": _cos(sums["or"], sums["oo"], sums["rr"])}


def approx_grad_metrics(sums: dict[str, float]) -> dict[str, float]:
    """approx/grad_cos from gradient_sums(total, approx): the cosine of the other loss's gradient with the total."""
    return {"approx/grad_cos": _cos(sums["ot"], sums["oo"], sums["tt"])}


def split_metrics(total: list[Tensor | None], drive: list[Tensor | None] | None = None,
                  approx: list[Tensor | None] | None = None) -> dict[str, float]:
    """From gradients given one tensor per parameter: grad/norm; with the drive part's gradient,
    grad/norm_drive, grad/norm_reg (reg = total - drive) and grad/cos_drive_reg; with another loss's gradient,
    approx/grad_cos (its cosine with the total). Streams (gradient_sums): no flat or float64 copies."""
    out = {"grad/norm": math.sqrt(gradient_sums(total)["tt"])}
    if drive is not None:
        out.update(drive_metrics(gradient_sums(total, drive, part=True)))
    if approx is not None:
        out.update(approx_grad_metrics(gradient_sums(total, approx)))
    return out


def extra_gradients(metrics: dict[str, Tensor], split: bool, approx: Tensor | None) -> list[tuple[str, Tensor]]:
    """The losses whose gradients update_gradient_metrics takes besides the total: the drive part (``split``,
    when the objective reports drive and regularizer) and ``approx``; empty: the backward need not keep its graph."""
    out = [("drive", metrics[DRIVE_KEY])] if split and DRIVE_KEY in metrics and REG_KEY in metrics else []
    return out + ([] if approx is None else [("approx", approx)])


def update_gradient_metrics(params: list[Tensor], metrics: dict[str, Tensor], *, split: bool = False,
                            approx: Tensor | None = None) -> dict[str, float]:
    """The gradient diagnostics of an update whose backward the caller has run (``.grad`` holds the loss's
    gradient; the graph retained when the split or ``approx`` is asked for): grad/norm, the drive/reg split
    (``split``, when the objective reports its parts) and approx/grad_cos (``approx``, e.g. the exact-ratio
    loss). Each extra gradient is taken with torch.autograd.grad (.grad untouched), used and freed before the
    next, so at most one extra gradient is alive; the last one frees the graph."""
    params = [p for p in params if p.requires_grad]
    total = [p.grad for p in params]
    out = split_metrics(total)
    extra = extra_gradients(metrics, split, approx)
    for i, (name, target) in enumerate(extra):
        grads = torch.autograd.grad(target, params, retain_graph=i < len(extra) - 1, allow_unused=True)
        if name == "drive":
            out.update(drive_metrics(gradient_sums(total, list(grads), part=True)))
        else:
            out.update(approx_grad_metrics(gradient_sums(total, list(grads))))
        del grads
    return out


def gradient_metrics(loss: Tensor, metrics: dict[str, Tensor], params: Iterable[Tensor], *,
                     split: bool = False, approx: Tensor | None = None) -> dict[str, float]:
    """``loss.backward()`` (gradients accumulate into .grad as it would) then update_gradient_metrics of this
    loss's gradient alone: for callers whose loop does not run the backward itself."""
    params = [p for p in params if p.requires_grad]
    held = [p.grad for p in params]         # gradients accumulated before: set aside, added back below
    for p in params:
        p.grad = None
    loss.backward(retain_graph=bool(extra_gradients(metrics, split, approx)))
    out = update_gradient_metrics(params, metrics, split=split, approx=approx)
    for p, h in zip(params, held, strict=True):
        if h is not None:
            p.grad = h if p.grad is None else h.add_(p.grad)
    return out


def response_efficiency(grad_norm: float, advantages: Tensor) -> float:
    """Gradient response efficiency ||grad|| / (½ (max A - min A)) (the paper's Exp 1); nan when A is constant."""
    spread = float(advantages.max() - advantages.min())
    return grad_norm / (0.5 * spread) if spread > 0 else math.nan
