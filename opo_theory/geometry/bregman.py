"""Mirror maps and their Bregman divergences, derived symbolically (eq 16).

D_Psi(x, y) = Psi(x) - Psi(y) - Psi'(y)(x - y). Written pointwise in the ratio t = pi/pi_k and
evaluated at the anchor y = 1, the generator D_Psi(t, 1) integrates under pi_k to a divergence:
Euclidean in v -> ½ Pearson chi² (the ½ is kept: chi² itself is E[v²]), negative entropy ->
KL(pi||pi_k), Burg -> KL(pi_k||pi). The Tsallis family Psi_a(t) = t^a / (a(a-1)) contains all
three: a = 2 (Euclidean), a -> 1 (negative entropy), a -> 0 (Burg).
"""

from __future__ import annotations

import sympy as sp

from opo_theory.geometry.coordinates import T
from opo_theory.validation import require_choice

X, Y = sp.symbols("x y", positive=True)
A_TSALLIS = sp.Symbol("a", real=True)

MIRROR_MAPS = {
    "euclidean": (X - 1) ** 2 / 2,          # Psi(v) = ½ v² with v = x - 1
    "negentropy": X * sp.log(X) - X,
    "burg": -sp.log(X),
}


def tsallis_psi(a: sp.Expr = A_TSALLIS) -> sp.Expr:
    """Psi_a(x) = x^a / (a (a - 1)) (a != 0, 1; the limits give negentropy and Burg)."""
    return X**a / (a * (a - 1))


def bregman(psi: sp.Expr, x: sp.Expr = X, y: sp.Expr = Y) -> sp.Expr:
    """D_Psi(x, y) = Psi(x) - Psi(y) - Psi'(y)(x - y) for a convex Psi written in the symbol X."""
    d_psi = sp.diff(psi, X)
    return sp.simplify(psi.subs(X, x) - psi.subs(X, y) - d_psi.subs(X, y) * (x - y))


def bregman_generator(name: str) -> sp.Expr:
    """Pointwise divergence generator D_Psi(t, 1) of a named mirror map."""
    require_choice("mirror map", name, MIRROR_MAPS)
    return sp.simplify(bregman(MIRROR_MAPS[name], T, sp.Integer(1)))


def bregman_gradient_hessian(psi: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Gradient and Hessian of x -> D_Psi(x, y): (Psi'(x) - Psi'(y), Psi''(x))."""
    d = bregman(psi)
    return sp.simplify(sp.diff(d, X)), sp.simplify(sp.diff(d, X, 2))
