"""chiPO's offline bandit (Huang et al. 2024, arXiv 2407.13399): suboptimality vs sample size, DPO vs chiPO.

Published statement: with beta tuned, chiPO's suboptimality J(pi*) - J(pi_hat) scales like
sqrt(C_pi* / n) (single-policy concentrability C_pi* = max_y pi*(y)/pi_ref(y)), while KL-regularised DPO
over-optimises poorly covered actions and has no such guarantee. The paper's appendix instance could not be
read here, so this is a reconstruction (stated in docs/reproductions.md): one context; the optimal action
y* with pi_ref(y*) = 1/2 (C_pi* = 2) and ``rare`` bad actions sharing the other half; rewards 1 (y*) and 0;
n pairs drawn from pi_ref x pi_ref labelled by Bradley-Terry on the rewards. A rare action that wins its few
comparisons by chance looks better than y*: DPO's log link lets its ratio grow without bound, chiPO's
link phi(z) = z + log z with the margin clipped at 2 R_max (R_max = 1) caps every ratio at O(1/beta).
Both are trained with the registry's ``dpo`` and ``chipo`` on the same pairs and the same Adam budget.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from opo_theory.reproductions.preference import train_pairwise
from opo_theory.validation import require_int, require_items, require_positive

METHODS = {"dpo": {}, "chipo": {"r_max": 1.0}}       # chiPO's clip at 2 R_max with rewards in [0, 1]
ZERO = 1e-6            # a suboptimality below this is 0 for the rate fit (all mass on y* to 6 digits)


def instance(rare: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pi_ref [K], rewards [K]): y* = action 0 with pi_ref 1/2 and reward 1; ``rare`` actions of reward 0."""
    pi_ref = torch.cat([torch.tensor([0.5]), torch.full((rare,), 0.5 / rare)]).double()
    rewards = torch.zeros(rare + 1, dtype=torch.float64)
    rewards[0] = 1.0
    return pi_ref, rewards


def sample_pairs(pi_ref, rewards, n: int, seeds: int, gen: torch.Generator):
    """(chosen, rejected) [seeds, n]: y, y' ~ pi_ref independently, y preferred with prob sigma(r(y) - r(y'))."""
    a = torch.multinomial(pi_ref.expand(seeds, -1), n, replacement=True, generator=gen)
    b = torch.multinomial(pi_ref.expand(seeds, -1), n, replacement=True, generator=gen)
    a_wins = torch.rand(seeds, n, generator=gen, dtype=torch.float64) < torch.sigmoid(rewards[a] - rewards[b])
    return torch.where(a_wins, a, b), torch.where(a_wins, b, a)


def chipo_bandit(ns=(25, 50, 100, 200, 400, 800, 1600), betas=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
                 rare: int = 20, seeds: int = 40, steps: int = 1500, lr: float = 0.05, seed: int = 0) -> dict:
    """For every n: sample ``seeds`` datasets, train each method at every beta (rows = betas x seeds), record
    the suboptimality 1 - E_pi[r]; 'tuned' = the beta with the lowest mean over seeds at that n."""
    require_items("ns", ns, lambda name, v: require_int(name, v, 1, 10**6), 100)
    require_items("betas", betas, require_positive, 100)
    require_int("rare", rare, 1, 10**5)
    require_int("seeds", seeds, 1, 10**5)
    require_int("steps", steps, 1, 10**6)
    require_positive("lr", lr)
    pi_ref, rewards = instance(rare)
    gen = torch.Generator().manual_seed(seed)
    beta = torch.tensor(betas, dtype=torch.float64).repeat_interleave(seeds)
    logp_ref = pi_ref.log().expand(len(betas) * seeds, -1).clone()
    table = {m: [] for m in METHODS}
    for n in ns:
        chosen, rejected = sample_pairs(pi_ref, rewards, n, seeds, gen)
        chosen, rejected = chosen.repeat(len(betas), 1), rejected.repeat(len(betas), 1)
        for method, extra in METHODS.items():
            final, _ = train_pairwise(method, {"beta": beta, **extra}, logp_ref, chosen, rejected, steps, lr)
            sub = (1 - final.exp() @ rewards).reshape(len(betas), seeds)
            mean, sem = sub.mean(1), sub.std(1) / math.sqrt(seeds)
            best = int(mean.argmin())
            table[method].append({"n": n, "mean_by_beta": mean.tolist(), "sem_by_beta": sem.tolist(),
                                  "tuned_beta": betas[best], "tuned_mean": float(mean[best]),
                                  "tuned_sem": float(sem[best])})
    return {"config": {"ns": list(ns), "betas": list(betas), "rare": rare, "seeds": seeds, "steps": steps,
                       "lr": lr, "seed": seed, "optimizer": "adam", "chipo_r_max": 1.0,
                       "pi_ref_optimal": 0.5, "C_pi_star": 2.0, "rewards": "y* 1, rare actions 0"},
            "table": table, "summary": summarize(table)}


def summarize(table: dict) -> dict:
    """Log-log slope of the tuned suboptimality against n per method, fitted where it is above ZERO (published:
    chiPO -1/2 or steeper), the n where it is not, and at which n one method's tuned mean lies below the other's
    by more than twice their combined standard error."""
    slopes, zero_at = {}, {}
    for m, rows in table.items():
        live = [(r["n"], r["tuned_mean"]) for r in rows if r["tuned_mean"] > ZERO]
        slopes[m] = float(np.polyfit(np.log([n for n, _ in live]), np.log([y for _, y in live]), 1)[0]) \
            if len(live) >= 2 else None
        zero_at[m] = [r["n"] for r in rows if r["tuned_mean"] <= ZERO]
    apart = lambda a, b: a["tuned_mean"] - b["tuned_mean"] > 2 * math.hypot(a["tuned_sem"], b["tuned_sem"])
    return {"tuned_slope": slopes, "tuned_zero_at_n": zero_at,
            "chipo_better_at_n": [d["n"] for d, c in zip(table["dpo"], table["chipo"]) if apart(d, c)],
            "dpo_better_at_n": [d["n"] for d, c in zip(table["dpo"], table["chipo"]) if apart(c, d)],
            "tuned": {m: [(r["n"], r["tuned_beta"], r["tuned_mean"]) for r in rows] for m, rows in table.items()}}
