"""Geometry (sympy): Bregman generators, divergence limits, escort limits, coordinates, bad input."""

import numpy as np
import pytest
import sympy as sp

from opo_theory.geometry import (
    DELTA,
    T,
    Z,
    amari_alpha_generator,
    bregman,
    bregman_generator,
    categorical_logprob_jacobian,
    escort_density,
    escort_weight,
    f_divergence,
    in_coordinate,
    tsallis_psi,
)
from opo_theory.geometry.bregman import A_TSALLIS, MIRROR_MAPS, X, Y, bregman_gradient_hessian
from opo_theory.geometry.coordinates import binary_delta_of_logit, derivative, logit_derivative
from opo_theory.geometry.fdivergence import ALPHA
from opo_theory.geometry.objectives import dpo, ipo, opo_exact, opo_surrogate


def same(a, b):
    return sp.simplify(sp.expand(a - b)) == 0


def test_bregman_generators_are_half_chi2_kl_and_reverse_kl():
    assert same(bregman_generator("euclidean"), (T - 1) ** 2 / 2)
    assert same(bregman_generator("negentropy"), T * sp.log(T) - T + 1)
    assert same(bregman_generator("burg"), T - sp.log(T) - 1)


def test_tsallis_family_contains_the_three_mirror_maps():
    gen = bregman(tsallis_psi(), T, sp.Integer(1))
    assert same(gen.subs(A_TSALLIS, 2), bregman_generator("euclidean"))
    assert same(sp.limit(gen, A_TSALLIS, 1), bregman_generator("negentropy"))
    assert same(sp.limit(gen, A_TSALLIS, 0), bregman_generator("burg"))


def test_bregman_gradient_and_hessian_of_negentropy():
    grad, hess = bregman_gradient_hessian(MIRROR_MAPS["negentropy"])
    assert same(grad, sp.log(X) - sp.log(Y))
    assert same(hess, 1 / X)


@pytest.mark.parametrize("alpha, expected", [
    (0, 2 * (sp.sqrt(T) - 1) ** 2),
    (3, (T - 1) ** 2 / 2),
    (-3, (T - 1) ** 2 / (2 * T)),
])
def test_amari_family_special_points(alpha, expected):
    assert same(amari_alpha_generator(sp.Integer(alpha)), expected)


def test_amari_family_limits_are_kl_and_reverse_kl():
    f = amari_alpha_generator()
    assert same(sp.limit(f, ALPHA, 1), T * sp.log(T) - T + 1)
    assert same(sp.limit(f, ALPHA, -1), T - sp.log(T) - 1)
    with pytest.raises(ValueError, match="alpha = 1"):
        amari_alpha_generator(1)


def test_f_divergence_numeric_matches_closed_forms():
    p, q = [sp.Rational(1, 5), sp.Rational(4, 5)], [sp.Rational(1, 2), sp.Rational(1, 2)]
    kl = sum(pi * sp.log(pi / qi) for pi, qi in zip(p, q))
    assert abs(float(f_divergence("kl", p, q) - kl)) < 1e-14
    pearson = sum((pi - qi) ** 2 / qi for pi, qi in zip(p, q))
    assert abs(float(f_divergence("pearson", p, q) - pearson)) < 1e-14
    js = 0.5 * sum(pi * np.log(float(pi) / (0.5 * float(pi + qi))) + qi * np.log(float(qi) / (0.5 * float(pi + qi)))
                   for pi, qi in zip(p, q))
    assert abs(float(f_divergence("jensen-shannon", q, p)) - js) < 1e-12
    with pytest.raises(ValueError, match="unknown f-divergence 'tv'"):
        f_divergence("tv", p, q)


def test_escort_weight_limits_and_density():
    pk, ps = sp.symbols("pk ps", positive=True)
    assert escort_weight(pk, ps, 1) == 1
    assert same(escort_weight(pk, ps, 0), ps / pk)
    rho = escort_density([sp.Rational(1, 2), sp.Rational(1, 2)], [0, 1], 0)
    assert same(rho[1], sp.E / (1 + sp.E))
    with pytest.raises(ValueError, match=r"alpha must lie in \[0.0, 1.0\], got 1.5"):
        escort_weight(pk, ps, 1.5)


def test_coordinates_and_jacobians():
    loss = opo_surrogate(sp.Symbol("g"), DELTA, 1)
    assert same(in_coordinate(DELTA, "v"), sp.log(1 + sp.Symbol("v", real=True)))
    # dL/dv = e^-Delta dL/dDelta
    assert same(derivative(loss, "v"), sp.exp(-DELTA) * sp.diff(loss, DELTA))
    # binary logit: dDelta/dz = 1 - sigma(z)
    sig = 1 / (1 + sp.exp(-Z))
    assert same(sp.diff(binary_delta_of_logit(), Z) - (1 - sig), 0)
    assert same(logit_derivative(DELTA), 1 - sig)
    jac = categorical_logprob_jacobian(3)
    z = sp.symbols("z0:3", real=True)
    pi1 = sp.exp(z[1]) / sum(sp.exp(zj) for zj in z)
    assert same(jac[0, 1], -pi1)
    with pytest.raises(ValueError, match="unknown coordinate 'w'"):
        in_coordinate(DELTA, "w")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        categorical_logprob_jacobian(1)


def test_objective_expressions_reject_bad_hyperparameters():
    with pytest.raises(ValueError, match=r"mu must be a finite number > 0, got -1"):
        opo_exact(1, DELTA, -1)
    with pytest.raises(ValueError, match="beta must be a finite number > 0, got 0"):
        dpo(DELTA, 0)


def test_sympy_matches_numeric_at_random_points():
    rng = np.random.default_rng(0)
    g, mu, h, beta = sp.symbols("g mu h beta")
    f_exact = sp.lambdify((g, DELTA, mu), sp.diff(opo_exact(g, DELTA, mu), DELTA))
    f_ipo = sp.lambdify((h, beta), ipo(h, beta))
    for _ in range(20):
        gv, dv, mv = rng.normal(), rng.normal() * 0.5, rng.uniform(0.1, 3)
        numeric = -gv * np.exp(dv) + mv * np.expm1(dv) * np.exp(dv)
        assert abs(f_exact(gv, dv, mv) - numeric) < 1e-12
        hv, bv = rng.normal(), rng.uniform(0.05, 1)
        assert abs(f_ipo(hv, bv) - (hv - 1 / (2 * bv)) ** 2) < 1e-12
