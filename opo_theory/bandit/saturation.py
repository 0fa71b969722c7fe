"""The Fig 4 binary-logit toy: gradients of every objective vs confidence p, in two anchoring regimes.

fixed-anchor: anchor and reference stay at z_ref = 0 (the paper's toy), so Delta_y = log 2 pi(y).
re-anchored: the anchor is the current policy (Delta = 0, weights pi_k = (p, 1 - p)), as in on-policy
training; DPO-style references and the KL reference stay at z_ref = 0. Then OPO's logit gradient is
-p(1-p)(g_1 - g_0), a policy gradient.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from opo_theory.bandit.enumerate import exact_batch
from opo_theory.objectives import DRIVE_KEY, REG_KEY, get
from opo_theory.validation import (
    require_choice,
    require_in_range,
    require_int,
    require_items,
    require_positive,
)

REGIMES = ("fixed-anchor", "re-anchored")
COORDS = ("logit", "delta", "v")
JUDGED_COORDS = ("delta", "logit")
FIG4_BASELINES = ("sft", "dpo", "grpo", "dapo", "gspo")    # the five the paper says decay
OPO_FORMS = {"surrogate": "opo", "exact": "opo-exact"}
OTHER_OBJECTIVES = {
    "sft": {}, "grpo": {}, "dapo": {}, "gspo": {}, "ppo-kl": {"beta": 0.1}, "ipo": {"beta": 0.5},
    "chipo": {"beta": 0.5}, "gopo": {"seq_logratio": "sum", "delta_clamp": None},
    "opo": {"alpha": 0.4, "mu": 1.0}, "opo-exact": {"alpha": 0.4, "mu": 1.0},
}
LEMMA_A1_DOMAIN = 1.0          # Lemma A.1 needs ||Delta||_inf < 1
BRACKETS = 1024                # fixed points that bracket roots and minima (not the plotting grid)
ROOT_XTOL = 1e-10              # tolerance in z of the root finder and the bounded minimiser
MAX_REFINED_MINIMA = 3         # local minima of the bracketing samples refined per curve
SIDES = ("confident-right", "confident-wrong")   # p of the rewarded response -> p_max, or -> 1 - p_max


def dpo_name(beta: float) -> str:
    return f"dpo(beta={beta:g})"


def saturation_objectives(dpo_betas) -> dict[str, dict]:
    """SFT, DPO at each beta of the sweep, then the other objectives, with their hyperparameters."""
    out = {"sft": {}}
    out.update({dpo_name(b): {"beta": float(b)} for b in dpo_betas})
    out.update({k: v for k, v in OTHER_OBJECTIVES.items() if k != "sft"})
    return out


def binary_toy_gradients(name: str, hyper: dict, z: torch.Tensor, regime: str = "fixed-anchor") -> dict[str, torch.Tensor]:
    """|dL/dz|, |dL/dDelta_1|, |dL/dv_1| (response 1 = the correct one) for every logit in ``z`` at once,
    and the signed logit gradient split into drive and penalty, per response.

    Two actions, p = sigma(z) on the correct one (reward 1), 1 - p on the other (reward 0); each z is
    its own group of the two responses. Chain rule: dL/dz = sum_y dL/dDelta_y dDelta_y/dz with
    dDelta/dz = (1 - p, -p).
    """
    require_choice("regime", regime, REGIMES)
    spec = get(name.split("(")[0])
    n = z.numel()
    z = z.detach().double()
    p = torch.sigmoid(z)
    logp = torch.stack([torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)], 1)
    ref = torch.full_like(logp, math.log(0.5))
    anchor = ref if regime == "fixed-anchor" else logp
    delta_leaf = (logp - anchor).requires_grad_(True)
    rewards = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(n, 1)
    extra = {"chosen": torch.arange(n) * 2, "rejected": torch.arange(n) * 2 + 1}
    if spec.needs_reference or spec.pairwise:          # references stay at z_ref = 0 in both regimes
        extra["logp_ref"] = ref.reshape(-1, 1)
    batch = exact_batch(delta_leaf + anchor, anchor, rewards, **extra)
    if regime == "fixed-anchor" or spec.kind == "supervised":
        # fixed anchor: two equally likely responses per z; SFT trains on the correct response whatever the
        # policy samples (with weights pi_k its token mean would divide by the sum of p over every z at once)
        batch = batch.with_(sample_weight=None)
    loss, parts = spec(batch, spec.make_config(**hyper))
    jac = torch.stack([1 - p, -p], 1)                    # dDelta_y/dz
    out = {}
    if DRIVE_KEY in parts:
        (g_drive,) = torch.autograd.grad(parts[DRIVE_KEY] * n, delta_leaf, retain_graph=True)
        (g_reg,) = torch.autograd.grad(parts[REG_KEY] * n, delta_leaf, retain_graph=True)
        out.update({"logit_drive": (g_drive * jac).sum(1), "logit_reg": (g_reg * jac).sum(1),
                    "logit_reg_chosen": g_reg[:, 0] * jac[:, 0], "logit_reg_unchosen": g_reg[:, 1] * jac[:, 1]})
    (g_delta,) = torch.autograd.grad(loss * n, delta_leaf)
    out["logit_signed"] = (g_delta * jac).sum(1)
    out["delta_signed"] = g_delta[:, 0]
    out["v_signed"] = g_delta[:, 0] * torch.exp(-delta_leaf[:, 0].detach())     # dL/dv = e^-Delta dL/dDelta
    for c in COORDS:
        out[c] = out[f"{c}_signed"].abs()
    out["delta_chosen"], out["delta_unchosen"] = delta_leaf.detach()[:, 0], delta_leaf.detach()[:, 1]
    return out


def toward_reward(name: str, hyper: dict, z, regime: str) -> dict[str, np.ndarray]:
    """u_c(z) = -dL/dc for c in COORDS (c = z, Delta_1, v_1): the gradient that moves toward the rewarded
    response; a descent step raises c when u_c > 0 and pushes the rewarded response down when u_c < 0."""
    zt = torch.as_tensor(np.atleast_1d(np.asarray(z, dtype=float)), dtype=torch.float64)
    g = binary_toy_gradients(name, hyper, zt, regime)
    return {c: -g[f"{c}_signed"].numpy() for c in COORDS}


def _refined_min(f, zs: np.ndarray, r: np.ndarray) -> float:
    """min of the continuous f over [zs[0], zs[-1]]: every local minimum of the samples r = f(zs) refined by
    bounded scalar minimisation on its two neighbouring intervals."""
    from scipy.optimize import minimize_scalar

    best = float(r.min())
    local = [i for i in range(len(r)) if r[i] <= r[max(i - 1, 0)] and r[i] <= r[min(i + 1, len(r) - 1)]
             and (i in (0, len(r) - 1) or r[i] < max(r[i - 1], r[i + 1]))]
    for i in sorted(local, key=lambda i: r[i])[:MAX_REFINED_MINIMA]:
        lo, hi = sorted((zs[max(i - 1, 0)], zs[min(i + 1, len(zs) - 1)]))
        res = minimize_scalar(lambda x: float(f(x)), bounds=(lo, hi), method="bounded",
                              options={"xatol": ROOT_XTOL})
        best = min(best, float(res.fun))
    return best + 0.0                  # -0.0 (an exactly clipped gradient) reads as 0


def _first_root(f, zs: np.ndarray, r: np.ndarray) -> float | None:
    """The z nearest 0 where f (sampled as r = f(zs), zs running away from 0) changes sign, by Brent's method."""
    from scipy.optimize import brentq

    for i in range(len(r) - 1):
        if r[i] == 0:
            return float(zs[i])
        if (r[i] > 0) != (r[i + 1] > 0):
            return float(brentq(lambda x: float(f(x)), zs[i], zs[i + 1], xtol=ROOT_XTOL))
    return None


def ratio_profile(name: str, hyper: dict, regime: str, z_end: float, threshold: float) -> dict[str, dict]:
    """_ratio_profile, computed once per process for each objective, regime, end and threshold."""
    return _ratio_profile(name, tuple(sorted(hyper.items())), regime, z_end, threshold)


@functools.lru_cache(maxsize=512)
def _ratio_profile(name: str, hyper_items: tuple, regime: str, z_end: float, threshold: float) -> dict[str, dict]:
    """Per coordinate, from the function rather than a grid: r(z) = u(z)/u(0) for z from 0 to ``z_end``
    (> 0: confident and right, < 0: confident and wrong), its minimum, the first p where it falls below
    ``threshold`` and the first p where u changes sign (the gradient turns away from the reward).

    The function is sampled at BRACKETS fixed points only to bracket roots and minima, which Brent's method
    and bounded minimisation then locate to ROOT_XTOL in z, so no result depends on a plotting grid."""
    hyper = dict(hyper_items)
    zs = np.linspace(0.0, z_end, BRACKETS + 1)
    u = toward_reward(name, hyper, zs, regime)
    out = {}
    for c in COORDS:
        u0 = float(u[c][0])
        if not u0 > 0:            # no push toward the reward at p = 0.5: nothing to decay from
            out[c] = {"u_half": u0, "min_ratio": -math.inf if u0 < 0 else 0.0, "drop_p": 0.5, "sign_change_p": None}
            continue
        def ratio(x, c=c, u0=u0):
            return toward_reward(name, hyper, x, regime)[c][0] / u0
        r = u[c] / u0
        drop = _first_root(lambda x: ratio(x) - threshold, zs, r - threshold)
        root = _first_root(ratio, zs, r)
        out[c] = {"u_half": u0, "min_ratio": _refined_min(ratio, zs, r),
                  "drop_p": None if drop is None else _sigmoid(drop),
                  "sign_change_p": None if root is None else _sigmoid(root)}
    return out


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def fig4_settings(min_ratios: dict, threshold: float, dpo_betas) -> list[dict]:
    """Fig 4's statement per (regime, coordinate, OPO form, DPO beta): OPO's gradient stays above
    ``threshold`` x its p = 0.5 value while every one of the five baselines falls below it."""
    rows = []
    for regime, by_name in min_ratios.items():
        for coord in JUDGED_COORDS:
            for form, opo in OPO_FORMS.items():
                for beta in dpo_betas:
                    names = ["sft", dpo_name(beta), "grpo", "dapo", "gspo"]
                    slowest = max(names, key=lambda n: by_name[n][coord])
                    rows.append({"regime": regime, "coordinate": coord, "opo_form": form, "dpo_beta": float(beta),
                                 "opo_min_ratio": by_name[opo][coord], "slowest_baseline": slowest,
                                 "slowest_baseline_min_ratio": by_name[slowest][coord]})
    return rows


def dpo_beta_sweep(drop: dict, dpo_betas, threshold: float, z_max: float) -> dict:
    """Which DPO betas fall below the threshold by p_max, against the closed form beta_c.

    DPO's logit gradient is beta sigma(-beta z) (both regimes: its reference stays at z_ref), so the
    ratio to p = 0.5 is 2 sigma(-beta z) and it crosses ``threshold`` iff beta z_max > log(2/threshold - 1).
    """
    crossing = {f"{b:g}": drop[dpo_name(b)]["logit"] for b in dpo_betas}
    decaying = [float(b) for b in dpo_betas if drop[dpo_name(b)]["logit"] is not None]
    return {"drop_p_logit": crossing, "decaying_betas": decaying,
            "smallest_decaying_beta": min(decaying) if decaying else None,
            "critical_beta_closed_form": math.log(2 / threshold - 1) / z_max}


def opo_fixed_anchor_split(curves: dict, sign_change: dict) -> dict:
    """OPO's fixed-anchor logit gradient at p_max split into drive and the penalty on each response; the p
    where its signed logit gradient turns away from the reward (its own fixed-anchor optimum), and where the
    unchosen response leaves Lemma A.1's domain |Delta| < 1: Delta_0 = log 2(1 - p) = -1 at p = 1 - e^-1/2."""
    out = {}
    for name in OPO_FORMS.values():
        c = curves[name]
        keys = ("logit_signed", "logit_drive", "logit_reg", "logit_reg_chosen", "logit_reg_unchosen",
                "delta_chosen", "delta_unchosen")
        out[name] = {k: c[k][-1] for k in keys}
        out[name]["unchosen_penalty_share"] = abs(c["logit_reg_unchosen"][-1]) / max(
            abs(c["logit_drive"][-1]) + abs(c["logit_reg_chosen"][-1]) + abs(c["logit_reg_unchosen"][-1]), 1e-300)
        out[name]["sign_change_p"] = sign_change[name]["logit"]
    out["p_unchosen_leaves_lemma_a1_domain"] = 1 - 0.5 * math.exp(-LEMMA_A1_DOMAIN)
    out["lemma_a1_domain"] = LEMMA_A1_DOMAIN
    return out


def ppo_kl_clamp(curves: dict, p: list[float], hyper: dict) -> dict:
    """ppo-kl's fixed-anchor logit spike: k3's gradient beta(1 - pi_ref/pi) on the unchosen response grows
    like 1/(1-p) until x = log pi_ref - log pi reaches the estimator clamp, where it drops to 0."""
    cfg = get("ppo-kl").make_config(**hyper)
    g = curves["ppo-kl"]["logit"]
    peak = max(range(len(g)), key=lambda i: g[i])
    clamp = cfg.kl_clamp
    return {"kl_estimator": cfg.kl, "kl_clamp": clamp, "peak_p": p[peak], "peak_grad": g[peak],
            "clamp_p_closed_form": None if clamp is None else 1 - 0.5 * math.exp(-clamp)}


def confident_wrong_summary(profiles: dict, threshold: float) -> dict:
    """Confident and wrong (p of the rewarded response -> 1 - p_max), where a vanishing gradient would stop
    the recovery: per regime and judged coordinate, which objectives' push toward the reward falls below
    ``threshold`` x its p = 0.5 value, and each one's minimum ratio."""
    return {r: {c: {"decays": [n for n, pr in by_name.items() if pr[c]["min_ratio"] < threshold],
                    "keeps": [n for n, pr in by_name.items() if pr[c]["min_ratio"] >= threshold],
                    "min_ratio": {n: pr[c]["min_ratio"] for n, pr in by_name.items()},
                    "drop_p": {n: pr[c]["drop_p"] for n, pr in by_name.items()}}
                for c in JUDGED_COORDS} for r, by_name in profiles.items()}


def re_anchored_opo_over_grpo(p: float = 0.999) -> dict:
    """Re-anchored (on-policy) OPO's logit gradient against GRPO's at confidence ``p``: GRPO's z-score divides
    by the group's std, which shrinks as p -> 1 and amplifies the rare signal; OPO's drive does not."""
    z = math.log(p / (1 - p))
    u = {n: float(toward_reward(n, OTHER_OBJECTIVES[n], z, "re-anchored")["logit"][0]) for n in ("opo", "grpo")}
    return {"p": p, "opo": u["opo"], "grpo": u["grpo"], "grpo_over_opo": u["grpo"] / u["opo"]}


def saturation(points: int = 400, p_max: float = 1 - 1e-9, threshold: float = 1e-3, regime: str = "both",
               dpo_betas=(0.1, 0.3, 1.0, 5.0)) -> dict:
    """The gradient toward the reward vs p = sigma(z) for each objective and anchoring regime ('both' runs
    the two), confident and right (p -> p_max) and confident and wrong (p -> 1 - p_max); per coordinate its
    minimum ratio to the p = 0.5 value and the first p where it falls below ``threshold`` x that value (None
    if never), found by root-finding on the function; Fig 4's statement per (regime, coordinate, OPO form,
    DPO beta) as numbers (opo_theory.claims.toy.judge_saturation judges them). ``points`` sets only the plotted
    curves."""
    require_int("points", points, 2, 10**6)
    require_in_range("p_max", p_max, 0.5, 1.0, low_open=True, high_open=True)
    require_in_range("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    require_choice("regime", regime, (*REGIMES, "both"))
    require_items("dpo_betas", dpo_betas, require_positive, 20)
    z_max = math.log(p_max / (1 - p_max))
    z = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(0, z_max, points, dtype=torch.float64)[1:]])
    p = torch.sigmoid(z)
    objectives = saturation_objectives(dpo_betas)
    regimes = REGIMES if regime == "both" else (regime,)
    curves, drop, ratios, sign_change, wrong = {}, {}, {}, {}, {}
    for r in regimes:
        curves[r], drop[r], ratios[r], sign_change[r], wrong[r] = {}, {}, {}, {}, {}
        for name, hyper in objectives.items():
            grads = binary_toy_gradients(name, hyper, z, r)
            curves[r][name] = {c: grads[c].tolist() for c in grads}
            right = ratio_profile(name, hyper, r, z_max, threshold)
            wrong[r][name] = ratio_profile(name, hyper, r, -z_max, threshold)
            drop[r][name] = {c: right[c]["drop_p"] for c in COORDS}
            ratios[r][name] = {c: right[c]["min_ratio"] for c in COORDS}
            sign_change[r][name] = {c: right[c]["sign_change_p"] for c in COORDS}
    rows = fig4_settings(ratios, threshold, dpo_betas)
    for row in rows:
        row["opo_sign_change_p"] = sign_change[row["regime"]][OPO_FORMS[row["opo_form"]]][row["coordinate"]]
    summary = {
        "fig4_statement": "OPO's gradient grows linearly while SFT/DPO/GRPO/DAPO/GSPO decay",
        "judged_gradient": "u = -dL/dc, the gradient toward the rewarded response (sign-aware: u < 0 pushes it "
                           "down); ratio to its p = 0.5 value; minima and crossings by root-finding",
        "below_threshold": {r: {c: [n for n in drop[r] if drop[r][n][c] is not None] for c in JUDGED_COORDS}
                            for r in regimes},
        "sign_change_p": sign_change,
        "settings": rows,
        "dpo_beta": dpo_beta_sweep(drop[regimes[0]], dpo_betas, threshold, z_max),
        "confident_wrong": confident_wrong_summary(wrong, threshold),
    }
    plist = p.tolist()
    if "fixed-anchor" in regimes:
        summary["opo_fixed_anchor_logit"] = opo_fixed_anchor_split(curves["fixed-anchor"], sign_change["fixed-anchor"])
        summary["ppo_kl_fixed_anchor"] = ppo_kl_clamp(curves["fixed-anchor"], plist, objectives["ppo-kl"])
    if "re-anchored" in regimes:
        summary["re_anchored_opo_vs_grpo"] = re_anchored_opo_over_grpo()
    return {"config": {"z_ref": 0.0, "rewards": [1, 0], "objectives": objectives, "regimes": list(regimes),
                       "threshold": threshold, "p_max": p_max, "points": points, "dpo_betas": list(dpo_betas),
                       "brackets": BRACKETS, "root_xtol": ROOT_XTOL,
                       "sign_convention": "signed dL/dz: gradient of the loss; a step z -= eta dL/dz moves z "
                                          "up (toward the correct response) when dL/dz < 0"},
            "p": plist, "curves": curves, "drop_p": drop, "min_ratio": ratios, "summary": summary}
