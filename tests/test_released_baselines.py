"""The baselines as the OPO paper's released configs ran them, as named `compare` variants: DAPO with clip_low 0,
clip_high 0.28 and centred (not std-divided) rewards; GSPO with a 0.2 clip on the sequence ratio."""

from __future__ import annotations

import torch

from opo_theory.lm.experiments.compare import parse_variant
from opo_theory.objectives import PolicyBatch, get


def variant_config(label: str):
    v = parse_variant(label)
    values = {}
    for setting in v.settings:
        key, value = setting.removeprefix("objective.").split("=")
        values[key] = value if key == "advantage" else float(value)
    return v, get(v.objective).make_config(**values)


def test_released_dapo_differs_from_the_registry_dapo():
    v, cfg = variant_config("dapo-released")
    assert (v.objective, cfg.eps_low, cfg.eps_high, cfg.advantage, cfg.aggregation) == (
        "dapo", 0.0, 0.28, "centered", "token-mean")
    default = get("dapo").make_config()
    assert (default.eps_low, default.advantage) == (0.2, "zscore")
    # one group, rewards 0/1/1/0: centred advantages are +-0.5; z-scored ones divide by the n-1 std sqrt(1/3)
    logp = torch.zeros(4, 3, requires_grad=True)
    batch = PolicyBatch(logp=logp, logp_old=torch.zeros(4, 3), mask=torch.ones(4, 3),
                        rewards=torch.tensor([0.0, 1.0, 1.0, 0.0]), group=torch.zeros(4, dtype=torch.long))
    released = torch.autograd.grad(get("dapo")(batch, cfg)[0], logp)[0]
    registry = torch.autograd.grad(get("dapo")(batch, default)[0], logp)[0]
    assert torch.allclose(released[1], torch.full((3,), -0.5 / 12))          # -A / (token count) at ratio 1
    assert torch.allclose(registry / released, torch.full_like(released, 3**0.5))


def test_released_gspo_clips_at_0_2():
    v, cfg = variant_config("gspo-released")
    assert (v.objective, cfg.eps_low, cfg.eps_high) == ("gspo", 0.2, 0.2)
    assert (get("gspo").make_config().eps_low, get("gspo").make_config().eps_high) == (3e-4, 4e-4)
