"""f-divergences D_f(P||Q) = E_Q[f(dP/dQ)] and Amari's alpha family (generators in the ratio t).

Conventions: Pearson chi² = E[(t-1)²] (no ½); squared Hellinger generator (sqrt t - 1)² (twice the
½-convention H²); JS generator gives the Jensen-Shannon divergence with natural log.
Amari: f_alpha(t) = 4/(1-alpha²) ((1-alpha)/2 + (1+alpha)/2 t - t^((1+alpha)/2)), alpha != ±1.
Limits (proved in tests and claims): alpha -> 1: KL(P||Q) generator t log t - t + 1;
alpha -> -1: KL(Q||P) generator -log t + t - 1; alpha = 0: 2 (sqrt t - 1)²;
alpha = 3: ½ (t-1)² (½ Pearson); alpha = -3: ½ (t-1)²/t (½ Neyman).
"""

from __future__ import annotations

import sympy as sp

from opo_theory.geometry.coordinates import T
from opo_theory.validation import require_choice

ALPHA = sp.Symbol("alpha", real=True)

F_GENERATORS = {
    "kl": T * sp.log(T),
    "reverse-kl": -sp.log(T),
    "pearson": (T - 1) ** 2,
    "neyman": (T - 1) ** 2 / T,
    "squared-hellinger": (sp.sqrt(T) - 1) ** 2,
    "jensen-shannon": (T * sp.log(T) - (1 + T) * sp.log((1 + T) / 2)) / 2,
}


def amari_alpha_generator(alpha: sp.Expr = ALPHA) -> sp.Expr:
    """f_alpha(t) = 4/(1-alpha²) ((1-alpha)/2 + (1+alpha)/2 t - t^((1+alpha)/2))."""
    if alpha in (1, -1):
        raise ValueError(f"alpha = {alpha} is a limit of the Amari family; take sympy.limit instead")
    return 4 / (1 - alpha**2) * ((1 - alpha) / 2 + (1 + alpha) / 2 * T - T ** ((1 + alpha) / 2))


def f_divergence(name: str, p: list, q: list) -> sp.Expr:
    """D_f(P||Q) = sum_i q_i f(p_i / q_i) for finite distributions given as lists."""
    require_choice("f-divergence", name, F_GENERATORS)
    if len(p) != len(q) or len(p) == 0:
        raise ValueError(f"p and q must be non-empty and of equal length, got {len(p)} and {len(q)}")
    f = F_GENERATORS[name]
    return sum(qi * f.subs(T, sp.sympify(pi) / qi) for pi, qi in zip(p, q, strict=True))
