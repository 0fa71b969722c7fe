"""The escort family (Def 3.1): rho_alpha ∝ pi_k^alpha P*^(1-alpha), P* ∝ exp(A).

Paper convention: alpha -> 1 gives rho = pi_k and uniform weights (conservative); alpha -> 0 gives
rho = P* and weights P*/pi_k (aggressive). The released code runs alpha the opposite way.
"""

from __future__ import annotations

import sympy as sp

from opo_theory.validation import require_in_range


def _check_alpha(alpha) -> None:
    if isinstance(alpha, (int, float)):
        require_in_range("alpha", alpha, 0.0, 1.0)


def escort_weight(pi_k: sp.Expr, p_star: sp.Expr, alpha: sp.Expr) -> sp.Expr:
    """Unnormalized escort weight w~_alpha = pi_k^(alpha-1) P*^(1-alpha) = (P*/pi_k)^(1-alpha)."""
    _check_alpha(alpha)
    return pi_k ** (alpha - 1) * p_star ** (1 - alpha)


def escort_density(pi_k: list, advantages: list, alpha: sp.Expr) -> list[sp.Expr]:
    """Normalized rho_alpha(y) = pi_k^alpha e^((1-alpha) A) / Z(alpha) over a finite outcome set."""
    _check_alpha(alpha)
    if len(pi_k) != len(advantages) or not pi_k:
        raise ValueError(f"pi_k and advantages must be non-empty and of equal length, got "
                         f"{len(pi_k)} and {len(advantages)}")
    unnorm = [p**alpha * sp.exp((1 - alpha) * a) for p, a in zip(pi_k, advantages, strict=True)]
    z = sum(unnorm)
    return [u / z for u in unnorm]
