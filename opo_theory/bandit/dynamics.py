"""Bandit dynamics, vectorized over rows (seeds x configs): every loss from the registry.

Function space: the fluctuation v [S, K] is the variable, stepped along its L2(pi_k) (Riesz)
gradient. Parameter space: logits z [S, K] (or contextual weights) stepped along their Euclidean
gradient. The OPO outer loop re-anchors pi_k and takes ``inner`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from opo_theory.bandit.enumerate import exact_batch, per_row, sampled_batch
from opo_theory.objectives import available, get
from opo_theory.objectives.opo import opo_drive
from opo_theory.validation import require_choice, require_positive


@dataclass
class Trace:
    """Per-row histories: reward [steps+1, S], grad_norm [steps, S], v_error [outer, inner+1, S]."""

    reward: Tensor
    grad_norm: Tensor
    v_error: Tensor | None = None

    def to_json(self) -> dict:
        return {k: v.tolist() for k, v in self.__dict__.items() if v is not None}


def _config(objective: str, hyper: dict, rows: int, k: int):
    spec = get(objective)
    return spec, spec.make_config(**{key: per_row(v, rows, k) for key, v in hyper.items()})


def _l2_error(v: Tensor, v_star: Tensor, pi_k: Tensor) -> Tensor:
    """||v - v*||_{L2(pi_k)} per row."""
    return ((pi_k * (v - v_star) ** 2).sum(-1)).sqrt()


def opo_target(logp_old: Tensor, means: Tensor, objective: str, hyper: dict) -> Tensor:
    """v* = (w~ - E[w~])/mu at the anchor (Thm 3.5), from the registry's drive, [S, K]."""
    s, k = logp_old.shape
    spec, cfg = _config(objective, hyper, s, k)
    batch = exact_batch(logp_old.clone(), logp_old, means)
    mu = cfg.mu if not isinstance(cfg.mu, Tensor) else cfg.mu.reshape(s, k)
    return opo_drive(batch, cfg).reshape(s, k) / mu


def function_space_inner(logp_old: Tensor, means: Tensor, hyper: dict, eta, steps: int,
                         v0: Tensor | None = None, objective: str = "opo-exact") -> Tensor:
    """Riesz gradient descent on v over H_0 for ``steps``; returns ||v_n - v*|| [steps+1, S]."""
    s, k = logp_old.shape
    spec, cfg = _config(objective, hyper, s, k)
    pi_k = logp_old.exp()
    v_star = opo_target(logp_old, means, objective, hyper)
    v = torch.zeros_like(logp_old) if v0 is None else v0.clone()
    eta = eta if not isinstance(eta, Tensor) else eta[:, None]
    errors = [_l2_error(v, v_star, pi_k)]
    for _ in range(steps):
        v.requires_grad_(True)
        loss, _ = spec(exact_batch(logp_old + torch.log1p(v), logp_old, means), cfg)
        (grad,) = torch.autograd.grad(loss, v)
        v = (v - eta * grad * s / pi_k).detach()          # Riesz map of L2(pi_k): divide by pi_k
        errors.append(_l2_error(v, v_star, pi_k))
    return torch.stack(errors)


def logit_outer_loop(means: Tensor, objective: str, hyper: dict, eta, outer: int, inner: int,
                     logits0: Tensor | None = None, track_v: bool = False) -> Trace:
    """Exact-gradient OPO-style loop in logit space: re-anchor, ``inner`` GD steps, repeat."""
    require_positive("outer", outer)
    require_positive("inner", inner)
    s, k = means.shape
    spec, cfg = _config(objective, hyper, s, k)
    z = torch.zeros_like(means) if logits0 is None else logits0.clone()
    eta = eta if not isinstance(eta, Tensor) else eta[:, None]
    rewards, norms, errors = [(z.softmax(-1) * means).sum(-1)], [], []
    for _ in range(outer):
        logp_old = z.log_softmax(-1).detach()
        v_star = opo_target(logp_old, means, objective, hyper) if track_v else None
        errs = [_l2_error(torch.zeros_like(z), v_star, logp_old.exp())] if track_v else None
        for _ in range(inner):
            z.requires_grad_(True)
            logp = z.log_softmax(-1)
            loss, _ = spec(exact_batch(logp, logp_old, means), cfg)
            (grad,) = torch.autograd.grad(loss, z)
            grad = grad * s                                # each row steps as if it were alone
            z = (z - eta * grad).detach()
            norms.append(grad.norm(dim=-1))
            if track_v:
                errs.append(_l2_error(torch.expm1(z.log_softmax(-1) - logp_old), v_star, logp_old.exp()))
        rewards.append((z.softmax(-1) * means).sum(-1))
        if track_v:
            errors.append(torch.stack(errs))
    return Trace(torch.stack(rewards), torch.stack(norms), torch.stack(errors) if track_v else None)


def sampled_loop(bandit, objective: str, hyper: dict, eta: float, steps: int, group_size: int,
                 seed: int = 0, updates: int = 1) -> Trace:
    """On-policy group RL: per step sample G arms per row, then ``updates`` gradient steps on the registry
    loss against that step's frozen anchor (>= 2 lets OPO's chi² penalty act: its gradient is 0 at the
    anchor). grad_norm records the first update's gradient of each step."""
    require_choice("objective", objective, available())       # every registered objective runs on sampled groups
    means = bandit.means
    s, k = means.shape
    spec = get(objective)
    cfg = spec.make_config(**hyper)
    gen = torch.Generator(device=means.device).manual_seed(seed)
    z = torch.zeros_like(means)
    logp_ref = z.log_softmax(-1).detach()
    rewards, norms = [(z.softmax(-1) * means).sum(-1)], []
    for _ in range(steps):
        logp_old = z.log_softmax(-1).detach()
        arms = torch.multinomial(logp_old.exp(), group_size, replacement=True, generator=gen)
        r = bandit.sample_rewards(arms, gen)
        extra = {}
        if spec.pairwise:
            base = torch.arange(s, device=means.device) * group_size
            extra = {"chosen": base + r.argmax(1), "rejected": base + r.argmin(1)}
        if spec.needs_reference:
            extra["logp_ref"] = torch.gather(logp_ref, 1, arms).reshape(-1, 1)
        for u in range(updates):
            z.requires_grad_(True)
            loss, _ = spec(sampled_batch(z.log_softmax(-1), logp_old, arms, r, **extra), cfg)
            (grad,) = torch.autograd.grad(loss, z)
            grad = grad * s
            z = (z - eta * grad).detach()
            if u == 0:
                norms.append(grad.norm(dim=-1))
        rewards.append((z.softmax(-1) * means).sum(-1))
    return Trace(torch.stack(rewards), torch.stack(norms))


def exact_gradient(means: Tensor, logits: Tensor, objective: str, hyper: dict) -> Tensor:
    """d E[L]/dz per row for the exact-enumeration batch at anchor = current policy."""
    s, k = means.shape
    spec, cfg = _config(objective, hyper, s, k)
    z = logits.clone().requires_grad_(True)
    logp = z.log_softmax(-1)
    loss, _ = spec(exact_batch(logp, logp.detach(), means), cfg)
    return torch.autograd.grad(loss, z)[0] * s
