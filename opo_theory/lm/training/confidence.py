"""Where in the policy's confidence the gradient goes: per-token statistics in bins of the anchor's token
probability p_old = pi_old(o_t | q, o_<t), and the norm of the update actually applied. One implementation,
used by the RL trainer (every step, the cheap part) and by `opo-theory audit` (signs, parts, logit space).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BIN_EDGES = (0.5, 0.9, 0.99, 0.999)
BIN_NAMES = ("lt0.5", "0.5-0.9", "0.9-0.99", "0.99-0.999", "ge0.999")
CONFIDENT_BINS = BIN_NAMES[2:]
SIGNS = ("all", "pos", "neg")


def confidence_bins(logp_old: Tensor) -> Tensor:
    """[B, T] bin index of p_old = exp(logp_old): 0 for p < 0.5, ..., 4 for p >= 0.999 (left-closed bins,
    compared in log space at logp_old's precision)."""
    x = logp_old.detach()
    edges = torch.tensor(BIN_EDGES, dtype=x.dtype, device=x.device).log()
    return torch.bucketize(x.contiguous(), edges, right=True)


def bin_statistics(logp_old: Tensor, mask: Tensor, grad: Tensor, adv: Tensor, *,
                   extra: dict[str, Tensor] | None = None, signs: tuple[str, ...] = ("all",)) -> dict[str, float]:
    """Per confidence bin b (and advantage sign s of the token's response, A [B]):

    ``b/share``      tokens of the bin / all counted tokens;
    ``b/grad_abs``   mean |dL/dlogp_t| over the bin's tokens (``grad`` [B, T] = dL/dlogp);
    ``b/clip_zero``  share of the bin's tokens in responses with A != 0 whose dL/dlogp_t is exactly 0
                     (the clip, or a Delta clamp, removed them from the gradient);
    ``b/<name>``     mean |x_t| of every ``extra[name]`` [B, T] (e.g. drive/penalty parts, logit-space size).
    Keys are ``<bin>/<stat>`` for s = all and ``<bin>/<s>/<stat>`` for s = pos, neg; plus ``total/grad_abs`` and
    ``total/clip_zero`` (all counted tokens, sign all). Empty bins give nan.
    """
    valid = mask.detach() != 0
    g = grad.detach()
    bins = confidence_bins(logp_old)
    adv_t = adv.detach()[:, None].expand_as(valid)
    values = {"grad_abs": g.abs().double(), **{k: v.detach().abs().double() for k, v in (extra or {}).items()}}
    informative = valid & (adv_t != 0)
    n_all = valid.sum().clamp_min(1).double()
    keys = ["total/grad_abs", "total/clip_zero"]
    vecs = [((values["grad_abs"] * valid).sum() / n_all)[None],
            ((informative & (g == 0)).sum() / informative.sum().double())[None]]
    nb = len(BIN_NAMES)
    for sign in signs:
        sel = valid & {"all": torch.ones_like(valid), "pos": adv_t > 0, "neg": adv_t < 0}[sign]
        idx = bins[sel]
        count = torch.bincount(idx, minlength=nb).double()
        stats = {"share": count / n_all}
        for name, v in values.items():
            stats[name] = torch.bincount(idx, weights=v[sel], minlength=nb) / count
        inf_sel = sel & informative
        stats["clip_zero"] = (torch.bincount(bins[inf_sel & (g == 0)], minlength=nb).double()
                              / torch.bincount(bins[inf_sel], minlength=nb).double())
        tag = "" if sign == "all" else f"/{sign}"
        for stat, vec in stats.items():
            keys += [f"{name}{tag}/{stat}" for name in BIN_NAMES]
            vecs.append(vec)
    flat = torch.cat(vecs).tolist()            # one device sync
    return {k: x if math.isfinite(x) else math.nan for k, x in zip(keys, flat, strict=True)}


def logit_scale(logp_all: Tensor, tokens: Tensor) -> Tensor:
    """[B, T] ||e_y - pi||_2 at each position from log pi [B, T, V]: |dL/dz| = |dL/dlogp_y| ||e_y - pi||."""
    p = logp_all.detach().exp()
    p_y = p.gather(-1, tokens[..., None]).squeeze(-1)
    return (1 - 2 * p_y + (p * p).sum(-1)).clamp_min(0).sqrt()


def param_snapshot(params: list[Tensor]) -> list[Tensor]:
    """Detached copies of ``params`` (before an optimizer step)."""
    return [p.detach().clone() for p in params]


def update_norm(params: list[Tensor], before: list[Tensor]) -> float:
    """||theta_after - theta_before||_2 over all ``params``: the update actually applied (clip + optimizer)."""
    diffs = torch._foreach_sub([p.detach() for p in params], before)
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs)).double()))


STEP_BLOCK = 1 << 24    # parameter elements copied at a time by step_and_measure (64 MiB in float32)


def step_and_measure(opt: torch.optim.Optimizer, params: list[Tensor], block: int = STEP_BLOCK) -> float:
    """``opt.step()`` returning ||theta_after - theta_before||_2 (update_norm) without a copy of every parameter:
    the parameters step a block of about ``block`` elements at a time, the others' ``.grad`` set aside (an
    optimizer skips a parameter without one). Elementwise optimizers (AdamW, SGD: each parameter's update reads
    only its own gradient and state) take exactly the step they take at once (tests/test_diagnostics.py)."""
    grads = [p.grad for p in params]
    for p in params:
        p.grad = None
    blocks, size = [[]], 0
    for p, g in zip(params, grads, strict=True):
        if g is not None:
            if size >= block:
                blocks.append([])
                size = 0
            blocks[-1].append((p, g))
            size += p.numel()
    squares = 0.0
    for chunk in filter(None, blocks):
        moving = [p for p, _ in chunk]
        before = param_snapshot(moving)
        for p, g in chunk:
            p.grad = g
        opt.step()
        squares += update_norm(moving, before) ** 2
        for p, _ in chunk:
            p.grad = None
        del before
    for p, g in zip(params, grads, strict=True):
        p.grad = g
    return math.sqrt(squares)


class TokenGrad:
    """dL/dlogp [B, T] caught by a hook on ``logp`` in the first backward through it (no extra backward):
    ``value``; ``values`` keeps every gradient that reaches ``logp``, in order (the loss's backward, then each
    torch.autograd.grad a diagnostic takes through it, e.g. the drive part's)."""

    def __init__(self, logp: Tensor) -> None:
        self.values: list[Tensor] = []
        logp.register_hook(self._catch)

    def _catch(self, grad: Tensor) -> None:
        self.values.append(grad.detach())

    @property
    def value(self) -> Tensor | None:
        return self.values[0] if self.values else None


def conf_metrics(batch, grad: Tensor) -> dict[str, float]:
    """``conf/<bin>/{share,grad_abs,clip_zero}`` (sign all) of ``grad`` = dL/dlogp [B, T] on ``batch``, with the
    batch's group-centred advantages deciding which tokens count for clip_zero."""
    from opo_theory.objectives.advantages import advantages

    conf = bin_statistics(batch.logp_old, batch.mask, grad, advantages(batch, "centered"))
    return {f"conf/{k}": v for k, v in conf.items()}


def step_metrics(batch, grad: Tensor, grad_norm: float, clip: float, moved: float) -> dict[str, float]:
    """What the trainer logs each step from its logged update: ``conf/<bin>/{share,grad_abs,clip_zero}`` of
    ``grad`` = dL/dlogp [B, T] (sign all); ``grad/norm_applied`` = ||g|| min(1, clip / (||g|| + 1e-6)), the
    gradient norm AdamW receives after clip_grad_norm_ (0 when a non-finite step was skipped);
    ``grad/update_norm`` = ``moved`` = ||theta_after - theta_before|| (step_and_measure; 0 when skipped);
    ``delta/abs_max_update`` = max_i |Delta_i| of the policy the update started from (sum form)."""
    from opo_theory.objectives.reduce import seq_logratio

    out = conf_metrics(batch, grad)
    out["grad/norm_applied"] = grad_norm * min(1.0, clip / (grad_norm + 1e-6)) if math.isfinite(grad_norm) else 0.0
    out["grad/update_norm"] = moved
    out["delta/abs_max_update"] = float(seq_logratio(batch, "sum").detach().abs().max())
    return out
