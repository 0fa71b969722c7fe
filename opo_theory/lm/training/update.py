"""One policy update, as the trainer and the audit take it: loss = objective(batch) (forward), ``loss.backward()``,
``clip_grad_norm_``, ``opt.step()``; with ``log`` the update's diagnostics are read from what that backward left
(``.grad``, and dL/dlogp caught by a hook on the batch's log-probs), never from a backward of their own."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from opo_theory.diagnostics import extra_gradients, update_gradient_metrics
from opo_theory.lm.training.confidence import TokenGrad, step_and_measure, step_metrics


@dataclass
class Update:
    """What one update did: whether it stepped (the clipped gradient was finite) and, when logged, its
    metrics (the ``update`` keys of opo_theory.lm.training.record) and dL/dlogp [B, T] of the loss and of its drive part
    (None when not taken)."""

    stepped: bool
    metrics: dict[str, float] = field(default_factory=dict)
    token_grad: Tensor | None = None
    drive_token_grad: Tensor | None = None


def policy_update(spec, obj_cfg, batch, opt: torch.optim.Optimizer, params: list[Tensor], clip: float, *,
                  log: bool = False, split: bool = False, twin=None) -> Update:
    """One registry-loss update of ``params`` by ``opt`` on ``batch`` (its ``logp`` carries the graph):
    forward the loss, backward, clip the gradient to ``clip``, step (skipped when the norm is not finite).

    With ``log``: grad/norm (pre-clip), the drive/reg split (``split``), approx/grad_cos against ``twin``'s
    loss (another registry objective, e.g. OPO's exact-ratio loss), every metric the objective returns,
    confidence.step_metrics (conf/*, grad/norm_applied, grad/update_norm, delta/abs_max_update) and entropy/mean;
    the extra gradients come from the backward's retained graph (diagnostics.update_gradient_metrics)."""
    loss, parts = spec(batch, obj_cfg)
    approx = twin(batch, obj_cfg)[0] if log and twin is not None else None
    caught = TokenGrad(batch.logp) if log else None            # dL/dlogp from the backward itself
    opt.zero_grad(set_to_none=True)
    extra = extra_gradients(parts, split, approx) if log else []
    loss.backward(retain_graph=bool(extra))
    metrics = update_gradient_metrics(params, parts, split=split, approx=approx) if log else {}
    stepped = math.isfinite(torch.nn.utils.clip_grad_norm_(params, clip))
    moved = 0.0
    if stepped and log:
        moved = step_and_measure(opt, params)        # the same step as opt.step(), its size measured
    elif stepped:
        opt.step()
    if not log:
        return Update(stepped)
    token_grad = caught.value
    metrics.update({k: float(v.detach()) for k, v in parts.items()})       # every metric the objective returns
    metrics.update(step_metrics(batch, token_grad, metrics["grad/norm"], clip, moved))
    if batch.entropy is not None:
        metrics["entropy/mean"] = float((batch.entropy * batch.mask).sum() / batch.mask.sum())
    drive = caught.values[1] if extra and extra[0][0] == "drive" and len(caught.values) > 1 else None
    return Update(stepped, metrics, token_grad, drive)
