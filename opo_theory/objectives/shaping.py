"""DAPO's batch and reward utilities: dynamic-sampling filter and soft overlong punishment."""

from __future__ import annotations

import torch
from torch import Tensor

from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.reduce import group_extreme
from opo_theory.validation import require_positive


def informative_per_group(rewards: Tensor, group: Tensor, atol: float = 0.0) -> Tensor:
    """[n_groups] bool: the group's rewards are not all equal (max - min > atol): the one definition of an
    informative group (DAPO dynamic sampling, reward/frac_zero_std, pairwise pairing)."""
    hi, lo = group_extreme(rewards, group, "amax"), group_extreme(rewards, group, "amin")
    return (hi - lo) > atol


def informative_groups(rewards: Tensor, group: Tensor, atol: float = 0.0) -> Tensor:
    """[B] bool: response belongs to a group whose rewards are not all equal (informative_per_group)."""
    return informative_per_group(rewards, group, atol).index_select(0, group)


def informative_rows(rewards: Tensor, atol: float = 0.0) -> Tensor:
    """[n] bool of a [n, G] reward grid (group i = row i): informative_groups per row."""
    n, g = rewards.shape
    group = torch.arange(n, device=rewards.device).repeat_interleave(g)
    return informative_groups(rewards.reshape(-1), group, atol).view(n, g)[:, 0]


def dynamic_sampling_filter(batch: PolicyBatch) -> PolicyBatch | None:
    """Drop groups whose rewards are all equal (zero advantage); None when nothing is left."""
    if batch.rewards is None:
        raise ValueError("dynamic sampling needs batch.rewards, got None")
    keep = informative_groups(batch.rewards, batch.group)
    if not keep.any():
        return None
    return batch.select(torch.nonzero(keep).flatten())


def overlong_penalty(lengths: Tensor, max_len: int, buffer: int) -> Tensor:
    """Soft overlong punishment: min(-(L - (L_max - L_buf))/L_buf, 0) for L > L_max - L_buf, else 0."""
    require_positive("max_len", max_len)
    require_positive("buffer", buffer)
    if buffer > max_len:
        raise ValueError(f"buffer must be <= max_len ({max_len}), got {buffer}")
    excess = lengths.to(torch.get_default_dtype()) - (max_len - buffer)
    return torch.clamp(-excess / buffer, max=0.0)
