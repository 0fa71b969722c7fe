"""Coordinates of a policy relative to its anchor pi_k: ratio t, fluctuation v, log-ratio Delta.

t = pi/pi_k = e^Delta, v = t - 1 = e^Delta - 1. A binary policy pi = sigma(z) has the logit z.
"""

from __future__ import annotations

import sympy as sp

from opo_theory.validation import require_choice

T = sp.Symbol("t", positive=True)          # likelihood ratio pi / pi_k
V = sp.Symbol("v", real=True)              # fluctuation t - 1 (lives in H_0 after centring)
DELTA = sp.Symbol("Delta", real=True)      # log-ratio log pi - log pi_k
Z = sp.Symbol("z", real=True)              # logit of a binary policy

# Each coordinate written as a function of Delta, the common chart.
_FROM_DELTA = {"Delta": DELTA, "t": sp.exp(DELTA), "v": sp.exp(DELTA) - 1}
COORDINATES = tuple(_FROM_DELTA)


def in_coordinate(expr_of_delta: sp.Expr, coordinate: str) -> sp.Expr:
    """Rewrite an expression in Delta as a function of ``coordinate`` ('Delta', 't' or 'v')."""
    require_choice("coordinate", coordinate, COORDINATES)
    inverse = {"Delta": DELTA, "t": sp.log(T), "v": sp.log(1 + V)}[coordinate]
    return sp.simplify(expr_of_delta.subs(DELTA, inverse))


def jacobian(coordinate: str) -> sp.Expr:
    """d(coordinate)/dDelta: 1 for Delta, e^Delta for t and v (so dL/dv = e^-Delta dL/dDelta)."""
    require_choice("coordinate", coordinate, COORDINATES)
    return sp.diff(_FROM_DELTA[coordinate], DELTA)


def derivative(loss_of_delta: sp.Expr, coordinate: str, order: int = 1) -> sp.Expr:
    """d^order L / d(coordinate)^order, expressed in Delta (chain rule through the Jacobian)."""
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    if coordinate == "z":
        raise ValueError("use logit_derivative for the logit coordinate")
    first = sp.simplify(sp.diff(loss_of_delta, DELTA) / jacobian(coordinate))
    if order == 1:
        return first
    return sp.simplify(sp.diff(first, DELTA) / jacobian(coordinate))


def binary_delta_of_logit(z_ref: sp.Expr = 0) -> sp.Expr:
    """Delta(z) = log sigma(z) - log sigma(z_ref) for the chosen action of a binary-logit policy."""
    return -sp.log(1 + sp.exp(-Z)) + sp.log(1 + sp.exp(-sp.sympify(z_ref)))


def logit_derivative(loss_of_delta: sp.Expr, z_ref: sp.Expr = 0) -> sp.Expr:
    """dL/dz = dL/dDelta * (1 - sigma(z)) for the binary-logit toy (Fig 4)."""
    return sp.diff(loss_of_delta.subs(DELTA, binary_delta_of_logit(z_ref)), Z)


def categorical_logprob_jacobian(n: int) -> sp.Matrix:
    """J_ij = d log softmax(z)_i / d z_j = delta_ij - pi_j for an n-way categorical policy."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    z = sp.symbols(f"z0:{n}", real=True)
    logp = [z[i] - sp.log(sum(sp.exp(zj) for zj in z)) for i in range(n)]
    return sp.Matrix(n, n, lambda i, j: sp.diff(logp[i], z[j]))
