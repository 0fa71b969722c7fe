"""Checks of the optimization claims: decoupling, contraction, saturation, DPO asymmetry (§6)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from opo_theory.geometry.coordinates import (
    DELTA,
    Z,
    binary_delta_of_logit,
    derivative,
    logit_derivative,
)
from opo_theory.geometry.objectives import dpo, opo_exact, opo_surrogate

G, MU, ETA, BETA, M = sp.symbols("g mu eta beta m", positive=True)
V_ = sp.Symbol("v", real=True)
SAT_PROBS = (0.5, 0.9, 0.99, 0.999)


def decoupling():
    loss_v = -G * V_ + MU / 2 * V_**2            # eq 15 pointwise, in v
    grad_ok = sp.simplify(sp.diff(loss_v, V_) - (-G + MU * V_)) == 0
    hess_ok = sp.diff(loss_v, V_, 2) == MU
    surrogate_hess = derivative(opo_surrogate(G, DELTA, MU), "Delta", 2)
    exact_hess = derivative(opo_exact(G, DELTA, MU), "Delta", 2)
    logit_hess = sp.diff(opo_surrogate(G, binary_delta_of_logit(), MU).subs(DELTA, DELTA), Z, 2)
    g_in_exact = G in exact_hess.free_symbols
    g_in_logit = G in logit_hess.free_symbols
    vals = {"exact_hess_delta_g0": float(exact_hess.subs({G: 0, MU: 1, DELTA: 0.5})),
            "exact_hess_delta_g1": float(exact_hess.subs({G: 1, MU: 1, DELTA: 0.5})),
            "logit_hess_g0": float(logit_hess.subs({G: 0, MU: 1, Z: 1})),
            "logit_hess_g1": float(logit_hess.subs({G: 1, MU: 1, Z: 1}))}
    ok = grad_ok and hess_ok and surrogate_hess == MU and g_in_exact and g_in_logit
    return ("conditional" if ok else "refuted",
            "Holds in the coordinate the theorem uses: grad_v L = -g + mu v, hess_v L = mu (sympy), "
            "and the Delta-surrogate also has hessian mu. It fails elsewhere: the exact loss in Delta "
            f"has hessian -g e^D + mu(2e^2D - e^D), which depends on g and so on alpha (at D=0.5, mu=1: "
            f"{vals['exact_hess_delta_g0']:.3f} for g=0 vs {vals['exact_hess_delta_g1']:.3f} for g=1); "
            f"in the logit of a binary policy the hessian is {vals['logit_hess_g0']:.3f} (g=0) vs "
            f"{vals['logit_hess_g1']:.3f} (g=1) at z=1. Condition: curvature is alpha-free only in v "
            "(or for the surrogate in Delta), not in parameter space.", vals)


def contraction():
    v_n, v_star = sp.symbols("v_n v_star", real=True)
    grad = -G + MU * v_n
    step = v_n - ETA * grad
    factor = sp.simplify((step - G / MU) / (v_n - G / MU))
    ok = sp.simplify(factor - (1 - ETA * MU)) == 0 and G not in factor.free_symbols
    # numeric: projected GD on H_0 for random instances converges at exactly |1 - eta mu|
    rng = np.random.default_rng(6)
    n, k = 1000, 6
    pi_k = rng.dirichlet(np.ones(k), size=n)
    g = rng.normal(size=(n, k))
    g -= (pi_k * g).sum(1, keepdims=True)
    mu = np.exp(rng.uniform(-2, 2, size=(n, 1)))
    eta = rng.uniform(0.05, 1.95, size=(n, 1)) / mu
    v = rng.normal(size=g.shape)
    v -= (pi_k * v).sum(1, keepdims=True)          # start anywhere in H_0
    v_star = g / mu
    err = lambda x: np.sqrt((pi_k * (x - v_star) ** 2).sum(1))
    before = err(v)
    after = err(v - eta * (-g + mu * v))
    dev = float(np.abs(after / before - np.abs(1 - eta[:, 0] * mu[:, 0])).max())
    ok &= dev < 1e-9
    return ("proved" if ok else "refuted",
            "sympy: one GD step in v gives v_{n+1} - v* = (1 - eta mu)(v_n - v*), independent of g and "
            "hence of alpha; converges iff |1 - eta mu| < 1 iff 0 < eta < 2/mu. Numerically on 1000 "
            f"random instances (L2(pi_k) gradient on H_0) the measured factor matches to {dev:.1e}. "
            "This is a function-space statement; in parameter space the rate is not |1 - eta mu| "
            "(see `opo-theory bandit grid`).", {"max_rate_deviation": dev})


def kl_saturation():
    loss = dpo(M, BETA)
    grad = sp.diff(loss, M)
    curv = sp.diff(loss, M, 2)
    sig = lambda x: 1 / (1 + sp.exp(-x))
    ok = sp.simplify((grad + BETA * sig(-BETA * M)).rewrite(sp.exp)) == 0
    ok &= sp.simplify((curv - BETA**2 * sig(BETA * M) * (1 - sig(BETA * M))).rewrite(sp.exp)) == 0
    ok &= sp.limit(-grad * sp.exp(BETA * M), M, sp.oo) == BETA
    ok &= sp.limit(curv * sp.exp(BETA * M), M, sp.oo) == BETA**2
    chi2_force = sp.diff(MU / 2 * (V_ - sp.Symbol("v_star")) ** 2, V_)
    ok &= sp.diff(chi2_force, V_) == MU
    return ("proved" if ok else "refuted",
            "sympy: d/dm[-log sigma(beta m)] = -beta sigma(-beta m) ~ -beta e^(-beta m) and the curvature "
            "beta² sigma(1-sigma) ~ beta² e^(-beta m); the chi² restoring force mu (v - v*) is linear "
            "with constant curvature mu. Note the two are not symmetric: DPO has no finite optimum in m, "
            "the chi² force vanishes at v*.", {})


def _toy_gradients(g: float, mu: float) -> dict:
    """|dL/dDelta| and |dL/dz| of the OPO surrogate on the binary-logit toy at SAT_PROBS."""
    loss = opo_surrogate(g, DELTA, mu)
    d_delta = sp.diff(loss, DELTA).subs(DELTA, binary_delta_of_logit())
    d_z = logit_derivative(loss)
    rows = {}
    for p in SAT_PROBS:
        z = float(np.log(p / (1 - p)))
        rows[str(p)] = {"dL_dDelta": abs(float(d_delta.subs(Z, z))), "dL_dz": abs(float(d_z.subs(Z, z)))}
    return rows


def toy_saturation():
    small, large = _toy_gradients(0.2, 1.0), _toy_gradients(1.0, 1.0)
    d_z = logit_derivative(opo_surrogate(G, DELTA, MU))
    logit_to_zero = sp.limit(d_z, Z, sp.oo) == 0
    delta_max = float(sp.limit(binary_delta_of_logit(), Z, sp.oo))
    col = lambda rows, key: [rows[str(p)][key] for p in SAT_PROBS]
    grows = np.all(np.diff(col(small, "dL_dDelta")) > 0)
    shrinks_logit = np.all(np.diff(col(small, "dL_dz")) < 0)
    fmt = lambda xs: ", ".join(f"{x:.3g}" for x in xs)
    ok = logit_to_zero and grows and shrinks_logit
    return ("conditional" if ok else "refuted",
            "Binary-logit toy, z_ref = 0, OPO surrogate, p = .5/.9/.99/.999. W.r.t. Delta the gradient "
            f"-g + mu Delta is affine and does not decay as p -> 1: g=.2, mu=1 gives |dL/dDelta| = "
            f"{fmt(col(small, 'dL_dDelta'))} (growing once Delta > g/mu). But Delta = log 2p is capped at "
            f"log 2 = {delta_max:.3f}, so with g=1, mu=1 it only falls: {fmt(col(large, 'dL_dDelta'))}. "
            "W.r.t. the logit every log-prob loss carries (1-p), OPO included: |dL/dz| = "
            f"{fmt(col(small, 'dL_dz'))} -> 0. Condition: 'does not saturate' holds for the gradient in "
            "Delta or v only; 'grows linearly' only past Delta = g/mu, where it is the penalty's restoring "
            "force, not a stronger drive.",
            {"g0.2_mu1": small, "g1_mu1": large, "delta_cap": delta_max})


def dpo_asymmetry():
    pw, pl, rw, rl = sp.symbols("pi_w pi_l ref_w ref_l", positive=True)
    h = sp.log(pw) - sp.log(rw) - sp.log(pl) + sp.log(rl)
    loss = dpo(h, BETA)
    ratio = sp.simplify(sp.diff(loss, pw) / sp.diff(loss, pl))
    ok = sp.simplify(ratio + pl / pw) == 0
    return ("proved" if ok else "refuted",
            "sympy: (dL/dpi_w)/(dL/dpi_l) = -pi_l/pi_w for the DPO loss in probability coordinates, "
            "whatever beta and the reference: when pi_l << pi_w the push down on y_l dominates.", {})
