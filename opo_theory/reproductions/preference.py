"""Offline preference training of tabular softmax policies on fixed pairs, with any registry pairwise loss.

Rows are independent problems (seeds x hyperparameters): logits z [S, K], reference log-probs [S, K],
pairs (chosen, rejected) [S, P] as arm indices. Each arm is a one-token response, so the registry's
sequence log-ratio is Delta(y) = log pi(y) - log pi_ref(y).
"""

from __future__ import annotations

import torch
from torch import Tensor

from opo_theory.bandit.enumerate import exact_batch
from opo_theory.objectives import get
from opo_theory.validation import require_int, require_positive


def pair_batch(logp: Tensor, logp_ref: Tensor, chosen: Tensor, rejected: Tensor):
    """The PolicyBatch of S rows x K arms whose pairs are row-local (chosen/rejected [S, P] arm indices)."""
    s, k = logp.shape
    offset = (torch.arange(s, device=logp.device) * k)[:, None]
    return exact_batch(logp, logp_ref, torch.zeros_like(logp), logp_ref=logp_ref.detach().reshape(-1, 1),
                       chosen=(chosen + offset).reshape(-1), rejected=(rejected + offset).reshape(-1))


def per_pair(value, pairs: int):
    """A per-row hyperparameter [S] as one value per pair [S*P] (floats pass through)."""
    return value.repeat_interleave(pairs) if isinstance(value, Tensor) else value


def train_pairwise(objective: str, hyper: dict, logp_ref: Tensor, chosen: Tensor, rejected: Tensor,
                   steps: int, lr: float, record_every: int = 0) -> tuple[Tensor, list[Tensor]]:
    """Adam on the logits (started at the reference) against the registry loss ``objective`` on fixed pairs.

    The batch loss is a mean over all rows' pairs; times S it gives each row the gradient of its own
    per-pair mean, and Adam's per-coordinate update keeps every row's trajectory independent of the others.
    Returns the final log-probs [S, K] and, every ``record_every`` steps (0: never), the log-probs on the way.
    """
    require_int("steps", steps, 1)
    require_positive("lr", lr)
    spec = get(objective)
    if not spec.pairwise:
        raise ValueError(f"objective {objective!r} is not pairwise; allowed: dpo, ipo, chipo")
    s, p = chosen.shape
    cfg = spec.make_config(**{key: per_pair(v, p) for key, v in hyper.items()})
    z = logp_ref.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    history = []
    for step in range(steps):
        loss, _ = spec(pair_batch(z.log_softmax(-1), logp_ref, chosen, rejected), cfg)
        opt.zero_grad()
        (loss * s).backward()
        opt.step()
        if record_every and (step + 1) % record_every == 0:
            history.append(z.detach().log_softmax(-1))
    return z.detach().log_softmax(-1), history
