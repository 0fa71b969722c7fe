"""The six bandit experiments of issue 4; each returns a JSON-serializable dict (curves included)."""

from __future__ import annotations

import math

import numpy as np
import torch

from opo_theory.bandit.dynamics import function_space_inner, logit_outer_loop, sampled_loop
from opo_theory.bandit.enumerate import exact_batch
from opo_theory.bandit.problems import KArmedBandit
from opo_theory.diagnostics import approx_metrics, gradient_metrics
from opo_theory.objectives import DRIVE_KEY, get, seq_logratio
from opo_theory.objectives.opo import bounded_target, opo_drive
from opo_theory.validation import (
    require_choice,
    require_in_range,
    require_int,
    require_items,
    require_nonnegative,
    require_positive,
    require_size,
)

# Limits on sizes (memory/time): tensors of at most MAX_ELEMENTS entries, histories of MAX_HISTORY.
MAX_ARMS, MAX_ROWS, MAX_STEPS, MAX_SEED = 100_000, 100_000, 100_000, 2**32 - 1
MAX_ELEMENTS, MAX_HISTORY = 10**7, 10**8


def _unit(name, value):
    return require_in_range(name, value, 0.0, 1.0)


def _count(name, value, low, high):
    return lambda: require_int(name, value, low, high)


def _check(*checks) -> None:
    for check in checks:
        check()

# ---------------------------------------------------------------- saturation (Fig 4 toy)

SATURATION_OBJECTIVES = {
    "sft": {}, "dpo(beta=0.1)": {"beta": 0.1}, "dpo(beta=1)": {"beta": 1.0}, "dpo(beta=5)": {"beta": 5.0},
    "grpo": {}, "dapo": {}, "gspo": {}, "ppo-kl": {"beta": 0.1}, "ipo": {"beta": 0.5},
    "chipo": {"beta": 0.5}, "gopo": {"seq_logratio": "sum", "delta_clamp": None},
    "opo": {"alpha": 0.4, "mu": 1.0}, "opo-exact": {"alpha": 0.4, "mu": 1.0},
}
COORDS = ("logit", "delta", "v")


def binary_toy_gradients(name: str, hyper: dict, z: torch.Tensor) -> dict[str, torch.Tensor]:
    """|dL/dz|, |dL/dDelta_y| and |dL/dv_y| on the Fig 4 toy, for every logit in ``z`` at once.

    Two actions, p = sigma(z) on the correct one (reward 1), 1 - p on the other (reward 0);
    anchor and reference at z_ref = 0; each z value is its own group of the two responses.
    """
    base = name.split("(")[0]
    spec = get(base)
    n = z.numel()
    z = z.detach().clone().double().requires_grad_(True)
    logp = torch.stack([torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)], 1)
    delta = logp - math.log(0.5)
    delta_leaf = delta.detach().clone().requires_grad_(True)
    logp_from_delta = delta_leaf + math.log(0.5)
    rewards = torch.tensor([1.0, 0.0], dtype=torch.float64).repeat(n)
    extra = {"chosen": torch.arange(n) * 2, "rejected": torch.arange(n) * 2 + 1}
    if base == "ppo-kl":
        extra["logp_ref"] = torch.full((2 * n, 1), math.log(0.5), dtype=torch.float64)
    out = {}
    for coord, lp, leaf in (("logit", logp, z), ("delta", logp_from_delta, delta_leaf)):
        batch = exact_batch(lp, torch.full_like(lp, math.log(0.5)), rewards.reshape(n, 2), **extra)
        batch = batch.with_(sample_weight=None)           # two equally likely responses per z
        loss, parts = spec(batch, spec.make_config(**hyper))
        if coord == "logit" and DRIVE_KEY in parts:       # signed split: drive vs regularizer
            (g_drive,) = torch.autograd.grad(parts[DRIVE_KEY] * n, leaf, retain_graph=True)
            out["logit_drive"] = g_drive
        (grad,) = torch.autograd.grad(loss * n, leaf)
        if coord == "logit":
            out["logit_signed"] = grad
            if "logit_drive" in out:
                out["logit_reg"] = grad - out["logit_drive"]
        out[coord] = grad.abs() if coord == "logit" else grad[:, 0].abs()
    out["v"] = out["delta"] * torch.exp(-delta[:, 0].detach())   # dL/dv = e^-Delta dL/dDelta
    return out


def saturation(points: int = 400, p_max: float = 1 - 1e-9, threshold: float = 1e-3) -> dict:
    """|dL/d coord| vs p = sigma(z) for each objective; the p where it first drops below
    ``threshold`` x its value at p = 0.5 (None if it never does)."""
    require_int("points", points, 2, 10**6)
    require_in_range("p_max", p_max, 0.5, 1.0, low_open=True, high_open=True)
    require_in_range("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
    z_max = math.log(p_max / (1 - p_max))
    z = torch.cat([torch.zeros(1, dtype=torch.float64), torch.linspace(0, z_max, points, dtype=torch.float64)[1:]])
    p = torch.sigmoid(z)
    curves, drop = {}, {}
    for name, hyper in SATURATION_OBJECTIVES.items():
        grads = binary_toy_gradients(name, hyper, z)
        curves[name] = {c: grads[c].tolist() for c in grads}
        drop[name] = {}
        for c in COORDS:
            g = grads[c]
            below = torch.nonzero(g < threshold * g[0]).flatten()
            drop[name][c] = None if len(below) == 0 else float(p[below[0]])
    decays_logit = [n for n in drop if drop[n]["logit"] is not None]
    survives_delta = [n for n in drop if drop[n]["delta"] is None]
    baselines = ("sft", "dpo(beta=1)", "grpo", "dapo", "gspo")
    opo_tail = {part: curves["opo"][part][-1] for part in ("logit_signed", "logit_drive", "logit_reg")}
    return {
        "config": {"z_ref": 0.0, "rewards": [1, 0], "objectives": SATURATION_OBJECTIVES,
                   "threshold": threshold, "p_max": p_max, "points": points},
        "p": p.tolist(), "curves": curves, "drop_p": drop,
        "summary": {
            "decay_below_threshold_in_logit": decays_logit,
            "no_decay_in_delta": survives_delta,
            "fig4_statement": "OPO's gradient grows linearly while SFT/DPO/GRPO/DAPO/GSPO decay",
            "holds_in_logit": "opo" not in decays_logit and all(b in decays_logit for b in baselines),
            "holds_in_delta": "opo" in survives_delta and not any(b in survives_delta for b in baselines),
            "opo_logit_parts_at_p_max": opo_tail,
            "opo_logit_survivor_is_restoring": opo_tail["logit_signed"] > 0 and abs(opo_tail["logit_reg"]) > abs(opo_tail["logit_drive"]),
        },
    }


# ---------------------------------------------------------------- dynamics (spec §7 check 1)

DYNAMICS_OBJECTIVES = {"opo": {"alpha": 0.4, "mu": 1.0}, "dpo": {"beta": 0.1}, "ppo-kl": {"beta": 0.05},
                       "grpo": {}}


def dynamics(arms: int = 10, seeds: int = 16, steps: int = 200, group_size: int = 8, eta: float = 0.5,
             seed: int = 0) -> dict:
    """OPO vs DPO vs KL-regularized PG vs GRPO on identical sampled data: reward and grad norm per step."""
    _check(_count("arms", arms, 2, MAX_ARMS), _count("seeds", seeds, 1, MAX_ROWS), _count("steps", steps, 1, MAX_STEPS),
           _count("group_size", group_size, 1, 10_000), lambda: require_positive("eta", eta),
           _count("seed", seed, 0, MAX_SEED))
    require_size("seeds x max(arms, group_size)", seeds * max(arms, group_size), MAX_ELEMENTS)
    require_size("steps x seeds", steps * seeds, MAX_HISTORY)
    bandit = KArmedBandit.make(seeds, arms, "bernoulli", seed=seed)
    best = bandit.means.max(1).values
    out = {"config": {"arms": arms, "seeds": seeds, "steps": steps, "group_size": group_size, "eta": eta,
                      "seed": seed, "objectives": DYNAMICS_OBJECTIVES}, "curves": {}, "summary": {}}
    for name, hyper in DYNAMICS_OBJECTIVES.items():
        tr = sampled_loop(bandit, name, hyper, eta, steps, group_size, seed=seed)
        regret = (best[None] - tr.reward).mean(1)
        gn = tr.grad_norm.mean(1)
        out["curves"][name] = {"regret": regret.tolist(), "grad_norm": gn.tolist()}
        out["summary"][name] = {"final_regret": float(regret[-1]), "grad_norm_first10": float(gn[:10].mean()),
                                "grad_norm_last20": float(gn[-20:].mean())}
    return out


# ---------------------------------------------------------------- grid (spec §7 check 2)

def _variance_shares(y: np.ndarray) -> tuple[float, float]:
    """Share of the variance of y [A, M, S] explained by the alpha and mu main effects."""
    cell = y.mean(-1)
    total = ((y - y.mean()) ** 2).mean()
    if total == 0:
        return 0.0, 0.0
    a_eff = ((cell.mean(1) - y.mean()) ** 2).mean()
    m_eff = ((cell.mean(0) - y.mean()) ** 2).mean()
    return float(a_eff / total), float(m_eff / total)


def _bootstrap_shares(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict:
    shares = np.array([_variance_shares(y[..., rng.integers(0, y.shape[-1], y.shape[-1])])
                       for _ in range(n_boot)])
    point = _variance_shares(y)
    ci = lambda col: [float(np.percentile(shares[:, col], 2.5)), float(np.percentile(shares[:, col], 97.5))]
    return {"alpha_share": point[0], "alpha_ci95": ci(0), "mu_share": point[1], "mu_ci95": ci(1)}


def grid(alphas=(0.3, 0.6, 0.9), mus=(0.5, 1.0, 2.0), seeds: int = 32, arms: int = 20,
         outer: int = 30, inner: int = 5, eta: float = 0.4, n_boot: int = 200, seed: int = 0,
         device: str = "cpu") -> dict:
    """alpha x mu x seeds in one batch: function-space rate vs |1 - eta mu|, parameter-space rate,
    final reward; variance shares (with 95% bootstrap CIs over seeds) of rate and reward."""
    _check(lambda: require_items("alphas", alphas, _unit, 100), lambda: require_items("mus", mus, require_positive, 100),
           _count("seeds", seeds, 1, MAX_ROWS), _count("arms", arms, 2, MAX_ARMS), _count("outer", outer, 1, MAX_STEPS),
           _count("inner", inner, 1, MAX_STEPS), _count("n_boot", n_boot, 1, MAX_STEPS), _count("seed", seed, 0, MAX_SEED),
           lambda: require_in_range(f"eta (step size, needs eta * max(mus) < 2 for mus = {list(mus)})", eta,
                                    0.0, 2.0 / max(mus), low_open=True, high_open=True),
           lambda: require_choice("device", device, ("cpu", "cuda")))
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use device=cpu")
    rows = len(alphas) * len(mus) * seeds
    require_size("len(alphas) x len(mus) x seeds x arms", rows * arms, MAX_ELEMENTS)
    require_size("outer x (inner + 1) x len(alphas) x len(mus) x seeds", outer * (inner + 1) * rows, MAX_HISTORY)
    require_size("n_boot x len(alphas) x len(mus) x seeds", n_boot * rows, MAX_HISTORY)
    a_grid, m_grid = np.meshgrid(alphas, mus, indexing="ij")
    n_cfg = a_grid.size
    bandit = KArmedBandit.make(seeds, arms, "bernoulli", seed=seed, device=device)
    means = bandit.means.repeat(n_cfg, 1).double()            # row = cfg * seeds + seed
    alpha = torch.tensor(a_grid.ravel(), dtype=torch.float64).repeat_interleave(seeds)
    mu = torch.tensor(m_grid.ravel(), dtype=torch.float64).repeat_interleave(seeds)
    hyper = {"alpha": alpha, "mu": mu}
    logp0 = torch.zeros_like(means).log_softmax(-1)
    f_err = function_space_inner(logp0, means, hyper, eta, inner)
    f_rate = (f_err[-1] / f_err[0]) ** (1 / inner)
    tr = logit_outer_loop(means, "opo", hyper, eta, outer, inner, track_v=True)
    ratios = tr.v_error[:, -1] / tr.v_error[:, 0]                 # [outer, rows]
    p_rate = ratios.clamp_min(1e-300) ** (1 / inner)
    shape = (len(alphas), len(mus), seeds)
    param_rate_first = p_rate[0].reshape(shape).numpy()
    final_reward = tr.reward[-1].reshape(shape).numpy()
    f_rate_np = f_rate.reshape(shape).numpy()
    theory = np.abs(1 - eta * m_grid)
    rng = np.random.default_rng(seed)
    return {
        "config": {"alphas": list(alphas), "mus": list(mus), "seeds": seeds, "arms": arms, "outer": outer,
                   "inner": inner, "eta": eta, "objective": "opo (paper geometry, surrogate)", "seed": seed},
        "function_rate": f_rate_np.mean(-1).tolist(),
        "function_rate_max_dev": float(np.abs(f_rate_np - theory[..., None]).max()),
        "theory_rate": theory.tolist(),
        "param_rate_first_outer": param_rate_first.mean(-1).tolist(),
        "param_rate_by_outer": p_rate.reshape(outer, *shape).mean(-1).numpy().tolist(),
        "final_reward": final_reward.mean(-1).tolist(),
        "final_reward_std": final_reward.std(-1).tolist(),
        "reward_curves": tr.reward.reshape(outer + 1, *shape).mean(-1).numpy().tolist(),
        "independence": {
            "param_rate": _bootstrap_shares(param_rate_first, n_boot, rng),
            "final_reward": _bootstrap_shares(final_reward, n_boot, rng),
        },
    }


# ---------------------------------------------------------------- approx (spec §7 check 3)

def approx(arms: int = 50, seeds: int = 8, etas=(0.1, 0.3, 1.0, 3.0, 10.0), inner_steps=(1, 4, 16),
           alpha: float = 0.4, mu: float = 1.0, seed: int = 0) -> dict:
    """Exact (eq 15) vs surrogate (eq 19) as the trust region grows: E[Delta³], loss gap, gradient
    cosine and Lemma A.1's bound after ``inner`` surrogate steps of size eta from the anchor."""
    _check(_count("arms", arms, 2, MAX_ARMS), _count("seeds", seeds, 1, MAX_ROWS),
           lambda: require_items("etas", etas, require_positive, 100),
           lambda: require_items("inner_steps", inner_steps, lambda n, v: require_int(n, v, 1, 10_000), 100),
           lambda: _unit("alpha", alpha), lambda: require_positive("mu", mu), _count("seed", seed, 0, MAX_SEED))
    require_size("seeds x arms", seeds * arms, MAX_ELEMENTS)
    require_size("len(etas) x sum(inner_steps) x seeds x arms", len(etas) * sum(inner_steps) * seeds * arms, 10**10)
    bandit = KArmedBandit.make(seeds, arms, "gaussian", seed=seed)
    means = bandit.means.double()
    z0 = torch.randn(seeds, arms, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    rows = []
    cfg = get("opo").make_config(alpha=alpha, mu=mu)
    for eta in etas:
        for inner in inner_steps:
            tr_z = z0.clone()
            logp_old = z0.log_softmax(-1)
            for _ in range(inner):
                tr_z.requires_grad_(True)
                loss, _ = get("opo")(exact_batch(tr_z.log_softmax(-1), logp_old, means), cfg)
                (g,) = torch.autograd.grad(loss, tr_z)
                tr_z = (tr_z - eta * seeds * g).detach()
            z = tr_z.requires_grad_(True)
            batch = exact_batch(z.log_softmax(-1), logp_old, means)
            delta = seq_logratio(batch)
            surrogate, parts = get("opo")(batch, cfg)
            exact, _ = get("opo-exact")(batch, cfg)
            m = approx_metrics(delta, batch, cfg)
            m.update(gradient_metrics(surrogate, parts, [z], split=False, approx=exact))
            w = batch.sample_weight
            e3 = float((w * delta.detach() ** 3).sum() / w.sum())
            v = torch.expm1(delta.detach())
            dinf = float(delta.detach().abs().max())
            tight = float((v - delta.detach()).abs().max() / (0.5 * dinf**2 * math.exp(dinf))) if 0 < dinf < 1 else None
            rows.append({"eta": eta, "inner": inner, "E_delta3": e3, "delta_inf": dinf,
                         "loss_gap": m["approx/loss_gap"], "grad_cos": m["approx/grad_cos"],
                         "lemma_holds": None if math.isnan(m["approx/lemma_holds"]) else bool(m["approx/lemma_holds"]),
                         "lemma_tightness": tight, "above_threshold": abs(e3) > 0.1})
    crossing = next((r for r in rows if r["above_threshold"]), None)
    return {"config": {"arms": arms, "seeds": seeds, "alpha": alpha, "mu": mu, "etas": list(etas),
                       "inner_steps": list(inner_steps), "seed": seed, "rewards": "gaussian arm means"},
            "rows": rows,
            "first_above_0.1": None if crossing is None else {"eta": crossing["eta"], "inner": crossing["inner"]}}


# ---------------------------------------------------------------- positivity (Prop 6.4)

def positivity(arms: int = 8, instances: int = 2000, mus=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
               scales=(0.25, 0.5, 1.0, 2.0, 4.0), alpha: float = 0.4, seed: int = 0) -> dict:
    """How often the closed form pi_k (1 + (w~ - w_bar)/mu) leaves the simplex, against Prop 6.4's
    condition mu >= w_bar - min w~, and the bounded projection (never negative)."""
    _check(_count("arms", arms, 2, MAX_ARMS), _count("instances", instances, 1, 10**6),
           lambda: require_items("mus", mus, require_positive, 100), lambda: require_items("scales", scales, require_nonnegative, 100),
           lambda: _unit("alpha", alpha), _count("seed", seed, 0, MAX_SEED))
    require_size("instances x arms", instances * arms, MAX_ELEMENTS)
    g = torch.Generator().manual_seed(seed)
    logp_old = torch.randn(instances, arms, generator=g, dtype=torch.float64).log_softmax(-1)
    base = torch.randn(instances, arms, generator=g, dtype=torch.float64)
    table = []
    for scale in scales:
        batch = exact_batch(logp_old.clone(), logp_old, base * scale)
        for mu in mus:
            cfg = get("opo").make_config(alpha=alpha, mu=mu)
            drive = opo_drive(batch, cfg).reshape(instances, arms)
            new = logp_old.exp() * (1 + drive / mu)
            negative = (new < 0).any(1)
            w_spread = -drive.min(1).values            # w_bar - min w~
            predicted = ~(mu >= w_spread)
            v_b, _ = bounded_target(drive.reshape(-1), batch, mu)
            bounded = logp_old.exp() * (1 + v_b.reshape(instances, arms))
            table.append({"scale": scale, "mu": mu, "frac_negative": float(negative.double().mean()),
                          "prop64_agreement": float((negative == predicted).double().mean()),
                          "bounded_min": float(bounded.min()),
                          "bounded_sum_err": float((bounded.sum(1) - 1).abs().max()),
                          "bounded_frac_zeroed": float((v_b <= -1).double().mean())})
    return {"config": {"arms": arms, "instances": instances, "alpha": alpha, "mus": list(mus),
                       "advantage_scales": list(scales), "seed": seed, "geometry": "paper"},
            "table": table,
            "all_agree": all(r["prop64_agreement"] == 1.0 for r in table),
            "bounded_never_negative": all(r["bounded_min"] >= 0 for r in table)}


# ---------------------------------------------------------------- kl-vs-chi2 (v1 abstract)

def kl_vs_chi2(arms: int = 16, scales=(0.25, 0.5, 1, 2, 4, 8), beta: float = 1.0, mu: float = 1.0,
               seed: int = 0) -> dict:
    """Optimal ratios under KL (e^(A/beta)/Z) and chi² (1 + (A - Abar)/mu, bounded at 0) as the
    advantage scale grows: max ratio, its growth per unit of scale, and the bounded optimum's sparsity."""
    _check(_count("arms", arms, 2, MAX_ELEMENTS), lambda: require_items("scales", scales, require_nonnegative, 1000),
           lambda: require_positive("beta", beta), lambda: require_positive("mu", mu), _count("seed", seed, 0, MAX_SEED))
    if len(set(scales)) < 2:
        raise ValueError(f"scales needs at least two distinct values (a slope is fitted), got {list(scales)}")
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(arms, generator=g, dtype=torch.float64)
    base = (base - base.mean()) / base.std()
    pi_ref = torch.full((arms,), 1 / arms, dtype=torch.float64)
    rows = []
    for s in scales:
        a = base * s
        t_kl = torch.exp(a / beta) / (pi_ref * torch.exp(a / beta)).sum()
        batch = exact_batch(pi_ref.log()[None].clone(), pi_ref.log()[None], a[None])
        v_b, lam = bounded_target(a - a.mean(), batch, mu)
        t_chi_linear = 1 + (a - a.mean()) / mu
        rows.append({"scale": s, "kl_max_ratio": float(t_kl.max()), "chi2_max_ratio": float(t_chi_linear.max()),
                     "chi2_bounded_max_ratio": float((1 + v_b).max()), "chi2_bounded_zero_frac": float((v_b <= -1).double().mean()),
                     "lambda_star": float(lam[0]), "kl_min_ratio": float(t_kl.min())})
    log_kl = np.log([r["kl_max_ratio"] for r in rows])
    sc = np.array(scales, dtype=float)
    return {"config": {"arms": arms, "scales": list(scales), "beta": beta, "mu": mu, "seed": seed},
            "rows": rows,
            "kl_log_ratio_slope": float(np.polyfit(sc, log_kl, 1)[0]),
            "chi2_ratio_slope": float(np.polyfit(sc, [r["chi2_max_ratio"] for r in rows], 1)[0])}


EXPERIMENTS = {"saturation": saturation, "dynamics": dynamics, "grid": grid, "approx": approx,
               "positivity": positivity, "kl-vs-chi2": kl_vs_chi2}
