"""Objective registry: one signature for every loss, ``fn(batch, config) -> (loss, metrics)``.

Every registered function sees ``compute_batch(batch)``: half precision upcast to float32 (losses
and metrics of half inputs are float32) and masked per-token entries zeroed.
``metrics`` maps namespaced keys (see ``opo_theory.diagnostics``) to detached scalar tensors, except
for the two optional *parts* keys ``loss/drive`` and ``loss/reg`` which keep their graph so the
diagnostics can split the gradient (``loss == loss/drive + loss/reg``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from opo_theory.objectives.batch import PolicyBatch, compute_batch
from opo_theory.objectives.config import check_magnitudes

LossFn = Callable[[PolicyBatch, Any], tuple[Tensor, dict[str, Tensor]]]
DRIVE_KEY, REG_KEY = "loss/drive", "loss/reg"


@dataclass(frozen=True)
class ObjectiveSpec:
    """A registered objective: its name, config dataclass, loss function, kind and what it needs.

    kind: "sequence" (group RL over responses), "token" (per-token clipped PG family),
    or "pairwise" (needs chosen/rejected), "supervised" (SFT).
    Trainers and engine adapters ask these flags instead of testing names:
    needs_reference  the batch must carry ``logp_ref`` from a frozen reference policy;
    twin             the objective whose gradient the diagnostics compare with (exact vs surrogate);
    has_opo_drive    the OPO family: loss = -E[g v] + (mu/2) E[v²] with a drive g computed over whole
                     groups (``objectives.opo.whole_group_drive``; a batch may carry it precomputed as
                     ``PolicyBatch.drive``), config an ``OPOConfig`` (escort weights, ESS, Delta mode);
    needs_whole_groups  every response of a prompt's group must be in the same loss call (group
                     centring, z-scores, escort normalisation, GOPO's lambda*, pairs within a group).
    """

    name: str
    config_cls: type
    fn: LossFn
    kind: str
    summary: str
    needs_reference: bool = False
    twin: str | None = None
    has_opo_drive: bool = False

    @property
    def pairwise(self) -> bool:
        """True when the batch must carry chosen/rejected preference pairs."""
        return self.kind == "pairwise"

    @property
    def needs_whole_groups(self) -> bool:
        return self.kind != "supervised"

    def make_config(self, **overrides) -> Any:
        """Config with ``overrides``; unknown keys raise ValueError listing the allowed ones."""
        fields = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown} for objective {self.name!r}; allowed: {sorted(fields)}")
        config = self.config_cls(**overrides)
        check_magnitudes(config)         # float hyperparameters within float32's safe range
        return config

    def __call__(self, batch: PolicyBatch, config: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self.fn(batch, self.make_config() if config is None else config)


_REGISTRY: dict[str, ObjectiveSpec] = {}


def register(name: str, config_cls: type, kind: str, summary: str, *, needs_reference: bool = False,
             twin: str | None = None, has_opo_drive: bool = False) -> Callable[[LossFn], LossFn]:
    """Decorator adding ``fn`` to the registry under ``name``; fn then runs on ``compute_batch(batch)``."""

    def deco(fn: LossFn) -> LossFn:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered")

        @functools.wraps(fn)
        def on_compute_batch(batch: PolicyBatch, config: Any) -> tuple[Tensor, dict[str, Tensor]]:
            return fn(compute_batch(batch), config)

        _REGISTRY[name] = ObjectiveSpec(name, config_cls, on_compute_batch, kind, summary,
                                        needs_reference, twin, has_opo_drive)
        return on_compute_batch

    return deco


def available(**flags) -> list[str]:
    """Names of the registered objectives, sorted; ``flags`` (e.g. has_opo_drive=True) keeps those whose
    ObjectiveSpec attributes have these values."""
    unknown = sorted(set(flags) - {f.name for f in dataclasses.fields(ObjectiveSpec)} - {"pairwise",
                                                                                       "needs_whole_groups"})
    if unknown:
        raise ValueError(f"unknown objective flag(s) {unknown}; allowed: the fields and properties of ObjectiveSpec")
    return sorted(n for n, s in _REGISTRY.items() if all(getattr(s, k) == v for k, v in flags.items()))


def get(name: str) -> ObjectiveSpec:
    """The objective registered as ``name`` (ValueError listing the allowed names otherwise)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown objective {name!r}; allowed: {', '.join(available())}")
    return _REGISTRY[name]
