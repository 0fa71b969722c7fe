"""Validation of objective hyperparameters (floats, or [B] tensors when a grid is vectorized)."""

from __future__ import annotations

import dataclasses
import math

import torch

from opo_theory.validation import require_in_range, require_positive, show

# Size of every float hyperparameter other than 0: inside it float32 losses, gradients and their squared norms
# stay finite for every registered objective (tests/test_objectives_extreme.py); beyond it a value such as
# mu=1e300 or norm_len=1e-300 is inf or 0 in float32 and no update could ever be applied.
MAGNITUDE = (1e-8, 1e8)
THRESHOLDS = frozenset({"cov_lb", "cov_ub"})   # compared with data, never multiplied: any finite value is safe


def check_magnitudes(config) -> None:
    """Every numeric field of an objective config but its integer ones (a seed) and THRESHOLDS (finite) is 0 or
    within MAGNITUDE in absolute value (tensors, the vectorized grids, are checked by their own ranges)."""
    low, high = MAGNITUDE
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if str(f.type).startswith("int") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if f.name in THRESHOLDS and not (isinstance(value, float) and not math.isfinite(value)):
            continue
        if value == 0 or (not (isinstance(value, float) and math.isnan(value)) and low <= abs(value) <= high):
            continue
        raise ValueError(f"{f.name} must be 0 or between {low:g} and {high:g} in absolute value (beyond, float32 "
                         f"losses and gradients overflow or underflow), got {show(value)}")


def check_positive(name: str, value) -> None:
    """value > 0 (a float, or a tensor whose entries all are)."""
    if isinstance(value, torch.Tensor):
        if not (torch.isfinite(value).all() and (value > 0).all()):
            raise ValueError(f"{name} must be finite and > 0 everywhere, got {value.flatten()[:5].tolist()}")
    else:
        require_positive(name, value)


def check_unit_interval(name: str, value, low_open: bool = False) -> None:
    """value in [0, 1] ((0, 1] with low_open), float or tensor."""
    if isinstance(value, torch.Tensor):
        bad = (value < 0) | (value > 1) | ~torch.isfinite(value) | ((value == 0) if low_open else False)
        if bad.any():
            raise ValueError(f"{name} must lie in {'(0' if low_open else '[0'}, 1], got {value.flatten()[:5].tolist()}")
    else:
        require_in_range(name, value, 0.0, 1.0, low_open=low_open)


def check_optional_positive(name: str, value) -> None:
    """None (the option is off), or a finite number > 0."""
    if value is not None:
        require_positive(name, value)
