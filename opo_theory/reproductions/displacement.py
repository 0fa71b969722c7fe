"""Likelihood displacement in the single-token setting (Razin et al. 2024, arXiv 2410.08847, §4).

Model: pi(y) = softmax(W h) over V tokens, token unembeddings W [V, d] fixed, hidden state h [d] trained
(the 'unconstrained features' view). One preference y+ over y-. For DPO (and every loss that depends on
the pair through the margin only) dh ∝ W_{y+} - W_{y-}, so, to first order,
    d/dt log pi(y+) ∝ <W_{y+} - E_pi[W], W_{y+} - W_{y-}>,
which is negative when y+ and y- have similar unembeddings and mass sits on tokens z aligned with
W_{y+} - W_{y-}: pi(y+) falls while pi(z) rises (published: training to prefer 'No' over 'Never' raises
'Yes'). New here: OPO's and GOPO's quadratic ratio penalty on the pair {y+ (reward 1), y- (reward 0)}
against the same fixed reference, and re-anchored every k steps as in OPO's outer loop. At the anchor their
gradient is the drive's, which is also along W_{y+} - W_{y-}; their minimiser however asks
Delta(y+) = +g/mu > 0 against the anchor, which DPO's margin-only loss never does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from opo_theory.bandit.enumerate import sampled_batch
from opo_theory.objectives import get
from opo_theory.reproductions.preference import pair_batch
from opo_theory.validation import require_int, require_positive

PREFERRED, DISPREFERRED, ALIGNED = 0, 1, 2          # token ids: y+ ('No'), y- ('Never'), z ('Yes')
OBJECTIVES = {"dpo": {"beta": 1.0}, "ipo": {"beta": 1.0}, "chipo": {"beta": 1.0}, "opo": {}, "gopo": {}}
INNER_STEPS = (30, 1000)  # the on-policy form of OPO/GOPO: pi_k <- pi every this many steps (outer iterations)
# label -> (registry objective, hyperparameters, reanchor_every); 0 = the fixed reference as anchor
RUNS = {**{name: (name, hyper, 0) for name, hyper in OBJECTIVES.items()},
        **{f"{name}-reanchor-{k}": (name, OBJECTIVES[name], k) for name in ("opo", "gopo") for k in INNER_STEPS}}


def designed_instance() -> tuple[Tensor, Tensor]:
    """(W [1, 4, 2], h0 [1, 2]): y+ = (1, 0), y- = (1, -0.3) nearly the same, z = (0, 1.5) aligned with
    W+ - W- = (0, 0.3), a filler token (-1, 0); at h0 = (1, 0.5) the first-order rate of log pi(y+) is < 0."""
    w = torch.tensor([[1.0, 0.0], [1.0, -0.3], [0.0, 1.5], [-1.0, 0.0]], dtype=torch.float64)
    return w[None], torch.tensor([[1.0, 0.5]], dtype=torch.float64)


def random_instances(n: int, vocab: int = 8, dim: int = 4, similarity: float = 0.9, seed: int = 0):
    """(W [n, V, d], h0 [n, d]): Gaussian unembeddings with W_{y-} = s W_{y+} + sqrt(1 - s²) noise, so that the
    preference pair has cosine ~ ``similarity``; h0 Gaussian."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, vocab, dim, generator=g, dtype=torch.float64)
    w[:, DISPREFERRED] = similarity * w[:, PREFERRED] + math.sqrt(1 - similarity**2) * w[:, DISPREFERRED]
    return w, torch.randn(n, dim, generator=g, dtype=torch.float64)


def predicted_rate(w: Tensor, h0: Tensor) -> Tensor:
    """<W_{y+} - E_pi[W], W_{y+} - W_{y-}> at h0 per row: the sign of d log pi(y+)/dt under margin losses."""
    pi = torch.einsum("svd,sd->sv", w, h0).softmax(-1)
    mean_w = torch.einsum("sv,svd->sd", pi, w)
    return ((w[:, PREFERRED] - mean_w) * (w[:, PREFERRED] - w[:, DISPREFERRED])).sum(-1)


def objective_batch(name: str, logp: Tensor, logp_ref: Tensor):
    """The registry batch for one preference per row: a pair (pairwise losses) or a group {y+: 1, y-: 0}."""
    s = logp.shape[0]
    if get(name).pairwise:
        return pair_batch(logp, logp_ref, torch.full((s, 1), PREFERRED), torch.full((s, 1), DISPREFERRED))
    arms = torch.tensor([[PREFERRED, DISPREFERRED]]).expand(s, -1)
    rewards = torch.tensor([[1.0, 0.0]], dtype=logp.dtype).expand(s, -1)
    return sampled_batch(logp, logp_ref, arms, rewards)


def train_hidden(name: str, hyper: dict, w: Tensor, h0: Tensor, steps: int, lr: float, record_every: int,
                 reanchor_every: int = 0):
    """Gradient descent on h (rows independent: the row-mean loss times S) against the fixed reference
    pi_ref = softmax(W h0); returns the log-probs [T, S, V] every ``record_every`` steps (step 0 first).
    reanchor_every > 0 (group objectives only): the anchor pi_k becomes the current policy every that many
    steps, as in OPO's outer loop; pairwise losses keep their reference by definition."""
    spec = get(name)
    if reanchor_every and spec.pairwise:
        raise ValueError(f"reanchor_every applies to group objectives; {name!r} keeps its reference (use 0)")
    cfg = spec.make_config(**hyper)
    logp_ref = torch.einsum("svd,sd->sv", w, h0).log_softmax(-1)
    anchor, h = logp_ref, h0.clone()
    history = [logp_ref]
    for step in range(steps):
        if reanchor_every and step % reanchor_every == 0:
            anchor = torch.einsum("svd,sd->sv", w, h).log_softmax(-1)
        h.requires_grad_(True)
        logp = torch.einsum("svd,sd->sv", w, h).log_softmax(-1)
        loss, _ = spec(objective_batch(name, logp, anchor), cfg)
        (grad,) = torch.autograd.grad(loss * h.shape[0], h)
        h = (h - lr * grad).detach()
        if (step + 1) % record_every == 0:
            history.append(torch.einsum("svd,sd->sv", w, h).log_softmax(-1))
    return torch.stack(history)


def displacement(steps: int = 3000, lr: float = 0.05, record_every: int = 30, n_random: int = 500,
                 seed: int = 0, runs: dict | None = None) -> dict:
    """Every run of ``runs`` (default RUNS) on the designed instance (curves of pi(y+), pi(y-), pi(z)) and on
    ``n_random`` random instances: the first step's change of log pi(y+) against the predicted sign, and the
    final state."""
    require_int("steps", steps, 1, 10**6)
    require_positive("lr", lr)
    require_int("record_every", record_every, 1, steps)
    require_int("n_random", n_random, 1, 10**6)
    runs = RUNS if runs is None else runs
    w_d, h_d = designed_instance()
    w_r, h_r = random_instances(n_random, seed=seed)
    rate = predicted_rate(w_r, h_r)
    out = {"config": {"steps": steps, "lr": lr, "optimizer": "gradient descent on h", "n_random": n_random,
                      "seed": seed, "runs": {k: list(v) for k, v in runs.items()},
                      "anchor": "fixed reference softmax(W h0), or re-anchored every reanchor_every steps",
                      "random": "V = 8, d = 4, cos(W+, W-) ~ 0.9"},
           "steps_recorded": list(range(0, steps + 1, record_every)),
           "designed": {"predicted_rate": float(predicted_rate(w_d, h_d)[0]), "curves": {}, "final": {}},
           "random": {"predicted_displacing": float((rate < 0).double().mean())}}
    for label, (name, hyper, reanchor) in runs.items():
        curve = train_hidden(name, hyper, w_d, h_d, steps, lr, record_every, reanchor)[:, 0].exp()
        out["designed"]["curves"][label] = {"preferred": curve[:, PREFERRED].tolist(),
                                           "dispreferred": curve[:, DISPREFERRED].tolist(),
                                           "aligned": curve[:, ALIGNED].tolist()}
        out["designed"]["final"][label] = {"preferred": float(curve[-1, PREFERRED]),
                                          "min_preferred": float(curve[:, PREFERRED].min()),
                                          "dispreferred": float(curve[-1, DISPREFERRED]),
                                          "aligned": float(curve[-1, ALIGNED]), "reference_preferred": float(curve[0, PREFERRED])}
        first = train_hidden(name, hyper, w_r, h_r, 1, 1e-4, 1)
        final = train_hidden(name, hyper, w_r, h_r, steps, lr, steps, reanchor)
        d_first = first[1, :, PREFERRED] - first[0, :, PREFERRED]
        d_final = final[-1, :, PREFERRED] - final[0, :, PREFERRED]
        margin = (final[-1, :, PREFERRED] - final[-1, :, DISPREFERRED]) - (final[0, :, PREFERRED] - final[0, :, DISPREFERRED])
        out["random"][label] = {
            "first_step_sign_matches_prediction": float(((d_first < 0) == (rate < 0)).double().mean()),
            "first_step_displacing": float((d_first < 0).double().mean()),
            "final_displaced": float((d_final < 0).double().mean()),
            "final_margin_grew": float((margin > 0).double().mean()),
            "median_final_delta_preferred": float(d_final.median()),
        }
    return out
