"""Boundary checks shared by every module: each raises ValueError naming the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable


def require_positive(name: str, value: float) -> float:
    """Require a finite ``value > 0``."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def require_nonnegative(name: str, value: float) -> float:
    """Require a finite ``value >= 0``."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def require_in_range(name: str, value: float, low: float, high: float,
                     *, low_open: bool = False, high_open: bool = False) -> float:
    """Require ``low <= value <= high`` (each end optionally open)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{rb}, got {value!r}")
    return float(value)


def require_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    """Require ``value`` to be one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(map(str, allowed))}")
    return value
