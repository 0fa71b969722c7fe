"""Shared test settings: the one micro char-GPT settings list (MICRO) and a session-scoped SFT warm-up cache.

Every module that trains the micro LM builds its `--set` list with ``micro_settings`` from MICRO, so the 30-step
SFT warm-up (keyed by TrainConfig.sft_key: every non-RL field) is the same entry for all of them and is trained
once per session in ``sft_cache``. A module whose test is about training or caching the warm-up itself (a cache
miss, a killed cache write) keeps its own empty cache directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The micro LM: 1 layer, 16 wide; a 30-step SFT warm-up on 300 level-2 problems; 4 prompts per RL step.
# Keys that some test appends itself (shaping, group_size, lr, steps, ...) are not in it: a key given twice
# is refused by `--set`.
MICRO = ("n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=30", "pool_size=300", "val_size=20",
         "train_level=2", "ood_level=3", "sft_batch=32", "val_every=2", "checkpoint_every=2", "prompts_per_step=4")
# The gradient audit's runs (tests/test_audit.py, tests/test_first_hour.py): MICRO with these; max_new=5 is part
# of the warm-up's key, so the audit's warm-up is a second cache entry, shared by both modules.
AUDIT_SETTINGS = ("shaping=0.5", "group_size=4", "max_new=5", "lr=0.01")


def micro_settings(*overrides: str, cache: str | Path | None = None) -> list[str]:
    """MICRO with each KEY=VALUE of ``overrides`` replacing MICRO's KEY (or appended after it), then
    ``sft_cache=cache`` when a cache is given: a `--set` list with every key once."""
    merged = dict(s.split("=", 1) for s in MICRO)
    for s in overrides:
        key, sep, value = s.partition("=")
        if not sep or not key:
            raise ValueError(f"micro_settings: override {s!r} is not KEY=VALUE")
        merged[key] = value
    if cache is not None:
        merged["sft_cache"] = str(cache)
    return [f"{k}={v}" for k, v in merged.items()]


@pytest.fixture(scope="session")
def sft_cache(tmp_path_factory) -> Path:
    """One SFT cache directory for the whole session: each distinct warm-up is trained once, then loaded."""
    return tmp_path_factory.mktemp("sft-cache")


@pytest.fixture(scope="session")
def micro(sft_cache) -> list[str]:
    """MICRO with the session's SFT cache: the `--set` list of a micro LM run."""
    return micro_settings(cache=sft_cache)
