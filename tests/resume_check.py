"""Shared check: an LM run interrupted mid-step and resumed ends exactly where an uninterrupted one does."""

import json

import pytest
import torch

from opo_theory.lm.training.checkpoint import load_state
from opo_theory.lm.training.trainer import start_run


def timeless_rows(run_dir):
    """metrics.jsonl rows without the wall-time keys (the only ones allowed to differ between runs)."""
    return [{k: v for k, v in json.loads(x).items() if not k.startswith(("time/", "throughput/"))}
            for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_resume_is_exact(cfg, root, monkeypatch) -> None:
    """Train ``cfg`` once uninterrupted and once interrupted mid-way through step 3 (checkpoint at step 2),
    then resumed: same rows (timings aside) and same final parameters."""
    start_run(cfg, root / "full", quiet=True).run()
    cut = start_run(cfg, root / "cut", quiet=True)
    real_step, calls = cut.rl_step, []

    def dies_at_step_three():
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step()

    monkeypatch.setattr(cut, "rl_step", dies_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    with pytest.raises(ValueError, match="already holds this run; pass --resume"):
        start_run(cfg, root / "cut", quiet=True)
    resumed = start_run(cfg, root / "cut", resume=True, quiet=True)
    resumed.run()
    assert timeless_rows(root / "full") == timeless_rows(root / "cut")
    assert [r["step"] for r in timeless_rows(root / "cut")] == list(range(cfg.steps))
    full = load_state(root / "full" / "checkpoint.pt")["model"]
    assert all(torch.equal(full[k], v) for k, v in resumed.model.state_dict().items())
