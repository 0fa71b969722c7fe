"""Checks of the inequalities: positivity, Lemma A.1, TV bound, bounded projection, lambda* = 0."""

from __future__ import annotations

import numpy as np

from opo_theory.claims.sampling import escort_weights, expect, random_instances
from opo_theory.claims.verdict import Evidence, Finding

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


def positivity() -> Finding:
    """Prop 6.4: pi_k (1 + (w~ - w_bar)/mu) >= 0 iff mu >= w_bar - min w~; mu >= ||w~ - w_bar||_inf suffices."""
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
    agree = float((nonneg == cond).mean())
    suff_share = float(nonneg[suff].mean()) if suff.any() else float("nan")
    violated = float((~nonneg).mean())
    return Finding([
        Evidence("share of instances where pi_(k+1) >= 0 agrees with mu >= w_bar - min w~", agree, 1.0),
        Evidence("share of instances with mu >= ||w~ - w_bar||_inf that stay >= 0", suff_share, 1.0),
    ], setup=f"{len(pi_k)} random instances (half exactly on the boundary)",
        notes=(f"{violated:.0%} of the random (alpha, mu, A) leave the simplex: the closed form alone is not "
               "a policy update without this condition or the bounded projection.",),
        numbers={"agreement": agree, "fraction_negative": violated})


def _loss_gap_rows(g_of_d, ds=(0.1, 0.01, 0.001, 0.0001), mu: float = 1.0) -> list[dict]:
    """Exact (eq 15) minus surrogate (eq 19) loss on 3 equiprobable outcomes with Delta ≈ (d, d, -2d)
    renormalized (sum pi = 1), for the drive g_of_d(d)."""
    pi_k = np.full(3, 1 / 3)
    rows = []
    for d in ds:
        raw = np.array([d, d, -2 * d])
        delta = raw - np.log((pi_k * np.exp(raw)).sum())
        v = np.expm1(delta)
        g = g_of_d(d)
        exact = (pi_k * (-g * v + mu / 2 * v**2)).sum()
        surrogate = (pi_k * (-g * delta + mu / 2 * delta**2)).sum()
        rows.append({"delta_inf": float(np.abs(delta).max()), "loss_gap": float(exact - surrogate),
                     "E_delta3": float((pi_k * delta**3).sum())})
    return rows


def _order(rows: list[dict], key: str) -> float:
    """Fitted exponent of |rows[key]| in delta_inf (log-log slope)."""
    log = lambda k: np.log([abs(r[k]) for r in rows])
    return float(np.polyfit(log("delta_inf"), log(key), 1)[0])


def log_ratio_error() -> Finding:
    """Lemma A.1 (eq 22): |v - Delta| <= ½delta² e^delta, |v² - Delta²| <= delta³ e^(2delta) for delta < 1;
    the loss gap -E[g(v - Delta)] + (mu/2)E[v² - Delta²] is second order for fixed g, O(delta³) for g = O(mu delta)."""
    deltas = np.linspace(1e-3, 0.999, 400)
    x = deltas[:, None] * np.linspace(-1, 1, 401)[None, :]        # |Delta| <= delta
    v = np.expm1(x)
    b1 = 0.5 * deltas**2 * np.exp(deltas)
    b2 = deltas**3 * np.exp(2 * deltas)
    t1 = (np.abs(v - x).max(1) / b1)
    t2 = (np.abs(v**2 - x**2).max(1) / b2)
    g_hat = np.array([1.0, -0.5, -0.5])
    rows = _loss_gap_rows(lambda d: g_hat)                        # fixed g = O(1)
    scaled = _loss_gap_rows(lambda d: d * g_hat)                  # g = O(mu delta), mu = 1
    gap_order, cube_order, scaled_order = _order(rows, "loss_gap"), _order(rows, "E_delta3"), _order(scaled, "loss_gap")
    ratio_small = abs(rows[-1]["loss_gap"] / rows[-1]["E_delta3"])
    return Finding([
        Evidence("max |v - Delta| / (½ delta² e^delta) over delta < 1", t1.max(), 1.0, "bound", 1e-12),
        Evidence("max |v² - Delta²| / (delta³ e^(2 delta)) over delta < 1", t2.max(), 1.0, "bound", 1e-12),
        Evidence("order in delta of the exact - surrogate loss gap, fixed g = (1, -.5, -.5)", gap_order, 3.0, "tight", 0.5),
        Evidence("order in delta of the loss gap, g = delta (1, -.5, -.5)", scaled_order, 3.0, "tight", 0.5,
                 condition="g = O(mu delta), e.g. near the trust-region solution v* = g/mu"),
    ], setup="Pointwise: 400 deltas x 401 Delta in [-delta, delta]. Loss: 3 equiprobable outcomes, "
             "Delta ≈ (d, d, -2d) renormalized, mu = 1, d = 0.1 ... 1e-4",
        notes=(f"Scaling: exact - surrogate = -½E[g Delta²] + (mu/2)E[Delta³] + O(delta⁴ + g delta³), second "
               f"order when g is fixed (at delta_inf = {rows[-1]['delta_inf']:.1e} the gap is "
               f"{rows[-1]['loss_gap']:.2e}, {ratio_small:.0f} x E[Delta³] = {rows[-1]['E_delta3']:.2e}; E[Delta³] "
               f"itself scales as delta^{cube_order:.2f}), third order only when g = O(mu delta); even then it is "
               "O(delta³), the size of E[Delta³] only when |E[Delta³]| ~ delta³. The GRADIENTS agree at "
               "Delta = 0 and differ by O(g delta).",),
        numbers={"tightness_v": float(t1.max()), "tightness_v2": float(t2.max()), "loss_gap_rows": rows,
                 "loss_gap_rows_g_scaled": scaled, "gap_order": gap_order, "E_delta3_order": cube_order,
                 "gap_order_g_scaled": scaled_order})


def tv_bound() -> Finding:
    """Prop A.3: TV = ½E|v| <= ½ sqrt(E[v²]) (Cauchy–Schwarz), equality when |v| is constant."""
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
    return Finding([
        Evidence("max TV / (½ sqrt(E[v²]))", ratio.max(), 1.0, "bound", 1e-12),
        Evidence("TV / bound on a symmetric 2-outcome move (|v| constant: the equality case)", eq_ratio, 1.0, "tight", 1e-12),
    ], setup=f"{len(pi_k)} random pairs", notes=(f"Median measured/bound {np.median(ratio):.3f}.",),
        numbers={"tightness_max": float(ratio.max()), "tightness_median": float(np.median(ratio))})


def bounded_projection() -> Finding:
    """GOPO: with v >= -1 the maximizer is max(-1, (g - lambda*)/mu), E[v*] = 0; GOPO's example lambda* = 0.26667."""
    a = np.array([GOPO_EXAMPLE["A"]])
    pi_u = np.full_like(a, 0.25)
    g = a - expect(pi_u, a)
    lam = float(bounded_lambda(g, np.array([[GOPO_EXAMPLE["mu"]]]), pi_u)[0, 0])
    pi_k, adv, alpha, mu, mask = random_instances(seed=10)
    g = np.where(mask, adv - expect(pi_k, adv), 0)
    lam_r = bounded_lambda(g, mu, pi_k)
    v = np.maximum(-1.0, (g - lam_r) / mu)
    nu = mu * v - (g - lam_r)                    # KKT multiplier of v >= -1
    feas = np.abs(expect(pi_k, v)).max()
    zero_iff = ((np.where(mask, v, 0) <= -1 + 1e-12) == (np.where(mask, g, np.inf) <= lam_r - mu + 1e-12))
    live = np.where(mask, 1.0, np.nan)
    return Finding([
        Evidence("lambda* on GOPO's example A = (1, .5, -.2, -1.3), mu = .5, uniform pi_k", lam,
                 GOPO_EXAMPLE["lambda_star"], "tight", 5e-6),
        Evidence("max |E[v*]| (feasibility)", feas, 0.0, "tight", 1e-9),
        Evidence("min KKT multiplier of v >= -1", np.nanmin(nu * live), 0.0, "floor", 1e-9),
        Evidence("max |complementary slackness|", np.nanmax(np.abs(nu * (v + 1)) * live), 0.0, "tight", 1e-9),
        Evidence("share of outcomes where pi(y) = 0 agrees with g <= lambda* - mu", np.nanmean(zero_iff * live), 1.0),
    ], setup=f"GOPO's example (0.8/3 exactly) and {len(pi_k)} random instances",
        numbers={"lambda_example": lam, "max_constraint_violation": float(feas)})


def lambda_zero() -> Finding:
    """GOPO: lambda* = 0 for centred A exactly when min A >= -mu (binary rewards, G = 8, mu = .5: iff at most half correct)."""
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
    binary_agree = float(np.mean([(lv > 1e-9) == (k > 4) for k, lv in zip(g8, lam_bin, strict=True)]))
    return Finding([
        Evidence("share of instances where lambda* = 0 agrees with min A >= -mu", agree, 1.0),
        Evidence("share of k/8 correct (binary, mu = .5) where lambda* > 0 agrees with k > 4", binary_agree, 1.0),
    ], setup=f"{len(pi_k)} random instances; binary rewards, G = 8",
        notes=(f"{1 - cond.mean():.0%} of the random instances violate min A >= -mu; binary lambda* = "
               + ", ".join(f"{k}:{v:.3f}" for k, v in binary.items()) + ".",),
        numbers={"agreement": agree, "binary_lambda": binary})
