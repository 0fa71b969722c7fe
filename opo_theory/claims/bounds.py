"""Checks of the inequalities: positivity, Lemma A.1, TV bound, bounded projection, lambda* = 0."""

from __future__ import annotations

import numpy as np

from opo_theory.claims.sampling import escort_weights, expect, random_instances

GOPO_EXAMPLE = {"A": [1.0, 0.5, -0.2, -1.3], "mu": 0.5, "lambda_star": 0.26667}


def bounded_lambda(g: np.ndarray, mu: np.ndarray, pi_k: np.ndarray, iters: int = 200) -> np.ndarray:
    """lambda* with E_{pi_k}[max(-1, (g - lambda*)/mu)] = 0, by bisection on [E g, max g + mu]."""
    lo = expect(pi_k, g)
    hi = np.where(pi_k > 0, g, -np.inf).max(-1, keepdims=True) + mu
    for _ in range(iters):
        mid = (lo + hi) / 2
        positive = expect(pi_k, np.maximum(-1.0, (g - mid) / mu)) > 0
        lo, hi = np.where(positive, mid, lo), np.where(positive, hi, mid)
    return (lo + hi) / 2


def positivity():
    pi_k, adv, alpha, mu, mask = random_instances(seed=7)
    w = escort_weights(pi_k, adv, alpha, mask)
    w_bar = expect(pi_k, w)
    w_min = np.where(mask, w, np.inf).min(-1, keepdims=True)
    # put half of the instances exactly on the boundary mu = w_bar - min w~ to test the 'iff'
    boundary = (w_bar - w_min)
    mu = np.where(np.arange(len(mu))[:, None] % 2 == 0, boundary, mu)
    mu = np.maximum(mu, 1e-12)
    new_pi = pi_k * (1 + (w - w_bar) / mu)
    nonneg = (np.where(mask, new_pi, 0) >= -1e-12 * np.abs(pi_k).max()).all(-1)
    cond = (mu >= boundary * (1 - 1e-12))[:, 0]
    suff = (mu >= np.where(mask, np.abs(w - w_bar), 0).max(-1, keepdims=True))[:, 0]
    agree = (nonneg == cond).mean()
    suff_ok = bool((~suff | nonneg).all())
    violated = float((~nonneg).mean())
    ok = agree == 1.0 and suff_ok
    return ("verified" if ok else "refuted",
            f"{len(pi_k)} random instances (half exactly on the boundary): pi_(k+1) >= 0 agrees with "
            f"mu >= w_bar - min w~ in {agree:.1%} of them; ||w~ - w_bar||_inf <= mu always implied "
            f"positivity. {violated:.0%} of the random (alpha, mu, A) leave the simplex — the closed "
            "form alone is not a policy update without this condition or the bounded projection.",
            {"agreement": float(agree), "fraction_negative": violated})


def log_ratio_error():
    deltas = np.linspace(1e-3, 0.999, 400)
    x = deltas[:, None] * np.linspace(-1, 1, 401)[None, :]        # |Delta| <= delta
    v = np.expm1(x)
    b1 = 0.5 * deltas**2 * np.exp(deltas)
    b2 = deltas**3 * np.exp(2 * deltas)
    t1 = (np.abs(v - x).max(1) / b1)
    t2 = (np.abs(v**2 - x**2).max(1) / b2)
    bounds_hold = (t1 <= 1 + 1e-12).all() and (t2 <= 1 + 1e-12).all()
    # Loss gap counterexample: 3 equally likely outcomes, centred g, normalized policy.
    pi_k = np.full(3, 1 / 3)
    g = np.array([1.0, -0.5, -0.5])
    rows = []
    for d in (0.1, 0.01, 0.001, 0.0001):
        raw = np.array([d, d, -2 * d])
        shift = np.log((pi_k * np.exp(raw)).sum())        # renormalize so that sum pi = 1
        delta = raw - shift
        v = np.expm1(delta)
        mu = 1.0
        exact = (pi_k * (-g * v + mu / 2 * v**2)).sum()
        surrogate = (pi_k * (-g * delta + mu / 2 * delta**2)).sum()
        rows.append({"delta_inf": float(np.abs(delta).max()), "loss_gap": float(exact - surrogate),
                     "E_delta3": float((pi_k * delta**3).sum())})
    ratio_small = abs(rows[-1]["loss_gap"] / rows[-1]["E_delta3"])
    second_order = rows[-1]["loss_gap"] / rows[-1]["delta_inf"] ** 2
    log = lambda key: np.log([abs(r[key]) for r in rows])
    gap_order = float(np.polyfit(log("delta_inf"), log("loss_gap"), 1)[0])
    cube_order = float(np.polyfit(log("delta_inf"), log("E_delta3"), 1)[0])
    gap_is_o_cube = abs(gap_order - cube_order) < 0.5
    verdict = "verified" if bounds_hold and gap_is_o_cube else "refuted"
    return (verdict,
            f"Both pointwise bounds hold for delta < 1 (worst measured/bound: {t1.max():.3f} and "
            f"{t2.max():.3f}; tight as delta -> 0 at Delta = +delta). The loss claim fails: exact minus "
            "surrogate = -½E[g Delta²] + O(delta³), second order whenever g is O(1). Counterexample: "
            f"3 equiprobable outcomes, g = (1, -.5, -.5), Delta ≈ (d, d, -2d), mu = 1: at delta_inf = "
            f"{rows[-1]['delta_inf']:.1e} the gap is {rows[-1]['loss_gap']:.2e} vs E[Delta³] = "
            f"{rows[-1]['E_delta3']:.2e} (ratio {ratio_small:.0f}, gap/delta² = {second_order:.3f}); "
            f"over delta = 0.2 ... 2e-4 the gap scales as delta^{gap_order:.2f}, E[Delta³] as "
            f"delta^{cube_order:.2f}. The GRADIENTS agree at Delta = 0 and differ by O(g delta).",
            {"tightness_v": float(t1.max()), "tightness_v2": float(t2.max()), "loss_gap_rows": rows,
             "gap_order": gap_order, "E_delta3_order": cube_order})


def tv_bound():
    pi_k, adv, alpha, mu, mask = random_instances(seed=8)
    rng = np.random.default_rng(9)
    q = rng.gamma(0.5, size=pi_k.shape) * mask
    q /= q.sum(-1, keepdims=True)
    v = np.where(mask, q / np.where(mask, pi_k, 1) - 1, 0)
    tv = 0.5 * expect(pi_k, np.abs(v))[:, 0]
    bound = 0.5 * np.sqrt(expect(pi_k, v**2))[:, 0]
    ratio = tv / bound
    # equality case: |v| constant (two equal-mass halves moved symmetrically)
    eq_pi, eq_v = np.array([0.5, 0.5]), np.array([0.3, -0.3])
    eq_ratio = float((0.5 * (eq_pi * np.abs(eq_v)).sum()) / (0.5 * np.sqrt((eq_pi * eq_v**2).sum())))
    ok = (ratio <= 1 + 1e-12).all() and abs(eq_ratio - 1) < 1e-12
    return ("verified" if ok else "refuted",
            f"{len(pi_k)} random pairs: TV <= ½ sqrt(E[v²]) always (Cauchy–Schwarz); worst measured/bound "
            f"= {ratio.max():.4f}, median {np.median(ratio):.3f}; equality when |v| is constant "
            f"(ratio {eq_ratio:.3f} on a symmetric 2-outcome move).",
            {"tightness_max": float(ratio.max()), "tightness_median": float(np.median(ratio))})


def bounded_projection():
    a = np.array([GOPO_EXAMPLE["A"]])
    pi_u = np.full_like(a, 0.25)
    g = a - expect(pi_u, a)
    lam = float(bounded_lambda(g, np.array([[GOPO_EXAMPLE["mu"]]]), pi_u)[0, 0])
    example_ok = abs(lam - GOPO_EXAMPLE["lambda_star"]) < 5e-6
    pi_k, adv, alpha, mu, mask = random_instances(seed=10)
    g = np.where(mask, adv - expect(pi_k, adv), 0)
    lam_r = bounded_lambda(g, mu, pi_k)
    v = np.maximum(-1.0, (g - lam_r) / mu)
    nu = mu * v - (g - lam_r)                    # KKT multiplier of v >= -1
    feas = np.abs(expect(pi_k, v)).max()
    kkt = (np.where(mask, nu, 0) >= -1e-9).all() and np.abs(np.where(mask, nu * (v + 1), 0)).max() < 1e-9
    zero_iff = ((np.where(mask, v, 0) <= -1 + 1e-12) == (np.where(mask, g, np.inf) <= lam_r - mu + 1e-12))
    zero_iff_ok = bool(np.where(mask, zero_iff, True).all())
    ok = example_ok and kkt and feas < 1e-9 and zero_iff_ok
    return ("verified" if ok else "refuted",
            f"GOPO's example A = (1, .5, -.2, -1.3), mu = .5, uniform pi_k: lambda* = {lam:.5f} "
            f"(= 0.8/3 exactly; stated 0.26667). On {len(pi_k)} random instances the clipped solution "
            f"satisfies the KKT conditions of max J s.t. v >= -1, E[v] = 0 (|E v*| <= {feas:.1e}), and "
            "pi(y) = 0 exactly when g <= lambda* - mu.",
            {"lambda_example": lam, "max_constraint_violation": float(feas)})


def lambda_zero():
    pi_k, adv, alpha, mu, mask = random_instances(seed=11)
    g = np.where(mask, adv - expect(pi_k, adv), 0)
    lam = bounded_lambda(g, mu, pi_k)[:, 0]
    cond = (np.where(mask, g, np.inf).min(-1) >= -mu[:, 0])
    zero = np.abs(lam) < 1e-9
    agree = float((zero == cond).mean())
    # binary rewards, G = 8, mu = 0.5: lambda* > 0 exactly when more than half are correct
    g8 = np.arange(1, 8)
    rewards = (np.arange(8)[None, :] < g8[:, None]).astype(float)
    pi_u = np.full((7, 8), 1 / 8)
    a = rewards - expect(pi_u, rewards)
    lam_bin = bounded_lambda(a, np.full((7, 1), 0.5), pi_u)[:, 0]
    binary = {f"{k}/8": float(lv) for k, lv in zip(g8, lam_bin, strict=True)}
    binary_ok = all((lv > 1e-9) == (k > 4) for k, lv in zip(g8, lam_bin, strict=True))
    ok = agree == 1.0 and binary_ok
    return ("verified" if ok else "refuted",
            f"On {len(pi_k)} random instances lambda* = 0 exactly when min A >= -mu ({agree:.1%} "
            f"agreement; {1 - cond.mean():.0%} of instances violate it). Binary rewards, G = 8, mu = .5: "
            f"lambda* = {', '.join(f'{k}:{v:.3f}' for k, v in binary.items())} — non-zero exactly when "
            "more than half are correct, as GOPO says.",
            {"agreement": agree, "binary_lambda": binary})
