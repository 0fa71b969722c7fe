"""IPO's illustrative bandit (Azar et al. 2023, arXiv 2310.12036, §5): deterministic preferences.

Three actions y_1 > y_2 > y_3 with every ordered pair observed (p*(y_i > y_j) = 1 for i < j), a uniform
reference and a tabular softmax policy trained offline with the registry's ``dpo`` and ``ipo``.
Published statement: DPO's optimum puts zero mass on the dispreferred actions for every beta (the KL
regularisation vanishes when preferences are deterministic), while IPO's optimum stays anchored to pi_ref.
IPO's minimiser here is closed-form: with h_ij = Delta_i - Delta_j, least squares on the three pairs gives
Delta_1 - Delta_2 = Delta_2 - Delta_3 = 2/(3 * 2 beta) = 1/(3 beta), i.e. pi ∝ pi_ref exp((1, 0, -1)/(3 beta)).
"""

from __future__ import annotations

import math

import torch

from opo_theory.reproductions.preference import train_pairwise
from opo_theory.validation import require_int, require_items, require_positive

TOTAL_ORDER = ((0, 1), (1, 2), (0, 2))      # (chosen, rejected): y_1 > y_2, y_2 > y_3, y_1 > y_3


def ipo_closed_form(beta: float, k: int = 3) -> list[float]:
    """IPO's minimiser on TOTAL_ORDER with a uniform reference: pi ∝ exp((1, 0, -1) / (3 beta))."""
    logits = torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64) / (3 * beta)
    return (logits + math.log(1 / k)).softmax(-1).tolist()


def ipo_bandit(betas=(0.1, 0.5, 1.0, 2.0), steps: int = 4000, lr: float = 0.01, record_every: int = 40) -> dict:
    """Train dpo and ipo for every beta on TOTAL_ORDER (rows = betas); curves of pi(y) per recorded step."""
    require_items("betas", betas, require_positive, 100)
    require_int("steps", steps, 1, 10**6)
    require_positive("lr", lr)
    require_int("record_every", record_every, 1, steps)
    s = len(betas)
    logp_ref = torch.full((s, 3), math.log(1 / 3), dtype=torch.float64)
    chosen = torch.tensor([[c for c, _ in TOTAL_ORDER]] * s)
    rejected = torch.tensor([[r for _, r in TOTAL_ORDER]] * s)
    beta = torch.tensor(betas, dtype=torch.float64)
    out = {"config": {"betas": list(betas), "steps": steps, "lr": lr, "optimizer": "adam", "actions": 3,
                      "pairs": [list(p) for p in TOTAL_ORDER], "reference": "uniform"},
           "steps_recorded": list(range(record_every, steps + 1, record_every)), "curves": {}, "final": {}}
    for name in ("dpo", "ipo"):
        final, history = train_pairwise(name, {"beta": beta}, logp_ref, chosen, rejected, steps, lr, record_every)
        curves = torch.stack(history).exp()                  # [T, S, 3]
        out["curves"][name] = {str(b): curves[:, i].tolist() for i, b in enumerate(betas)}
        out["final"][name] = {str(b): final[i].exp().tolist() for i, b in enumerate(betas)}
    out["ipo_closed_form"] = {str(b): ipo_closed_form(b) for b in betas}
    out["summary"] = summarize(out)
    return out


def summarize(out: dict) -> dict:
    """The published statement against the measurement: DPO's pi(y_3) -> 0 for every beta (final value and
    whether it is still falling over the last quarter), IPO's distance to its closed form and to pi_ref."""
    dpo, ipo = out["final"]["dpo"], out["final"]["ipo"]
    quarter = max(1, len(out["steps_recorded"]) // 4)
    falling = {b: c[-1][2] < c[-1 - quarter][2] for b, c in out["curves"]["dpo"].items()}
    ipo_err = {b: max(abs(x - y) for x, y in zip(ipo[b], out["ipo_closed_form"][b])) for b in ipo}
    tv_ref = lambda p: 0.5 * sum(abs(x - 1 / 3) for x in p)
    return {
        "dpo_worst_pi_y3": {b: p[2] for b, p in dpo.items()},
        "dpo_pi_y3_still_falling": falling,
        "dpo_tv_to_ref": {b: tv_ref(p) for b, p in dpo.items()},
        "ipo_max_abs_error_to_closed_form": ipo_err,
        "ipo_tv_to_ref": {b: tv_ref(p) for b, p in ipo.items()},
        "ipo_pi_y3": {b: p[2] for b, p in ipo.items()},
    }
