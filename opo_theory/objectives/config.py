"""Validation of objective hyperparameters (floats, or [B] tensors when a grid is vectorized)."""

from __future__ import annotations

import torch

from opo_theory.validation import require_in_range, require_positive


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
