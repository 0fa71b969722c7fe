"""Advantages from rewards: group-centred (Dr. GRPO, OPO, GOPO) or group z-scored (GRPO, DAPO, GSPO)."""

from __future__ import annotations

from torch import Tensor

from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.reduce import center, group_std
from opo_theory.validation import require_choice

ADVANTAGE_KINDS = ("centered", "zscore")


def advantages(batch: PolicyBatch, kind: str = "zscore", eps: float = 1e-6, std: str = "sample") -> Tensor:
    """[B] A_i = R_i - mean_G R ('centered') or (R_i - mean_G R)/(std_G R + eps) ('zscore').

    std: 'sample' (n-1, torch.std: TRL's and verl's convention, the default) or 'population' (n).
    A batch that carries ``advantages`` uses them as given (kind is then ignored).
    """
    require_choice("advantage kind", kind, ADVANTAGE_KINDS)
    if batch.advantages is not None:
        return batch.advantages
    a = center(batch.rewards, batch, "group")
    if kind == "zscore":
        a = a / (group_std(batch.rewards, batch, std) + eps)
    return a
