"""tests/conftest.py's micro settings: every key once, overrides replace, and the RL-only overrides the LM test
modules add keep one SFT warm-up (one session cache entry) for all of them."""

import pytest
from conftest import AUDIT_SETTINGS, MICRO, micro_settings

from opo_theory.lm.training.config import make_config


def warm_up_key(*overrides: str) -> str:
    return make_config("opo", "cpu-tiny", 0, micro_settings(*overrides)).sft_key()


def test_overrides_replace_micro_keys_and_each_key_is_given_once(tmp_path):
    got = micro_settings("val_every=1", "shaping=0.5", cache=tmp_path)
    keys = [s.split("=", 1)[0] for s in got]
    assert len(keys) == len(set(keys)) == len(MICRO) + 2
    assert "val_every=1" in got and "val_every=2" in MICRO and "val_every=2" not in got
    assert got[-2:] == ["shaping=0.5", f"sft_cache={tmp_path}"]
    assert micro_settings() == list(MICRO)


@pytest.mark.parametrize("bad", ["shaping", "=0.5", ""])
def test_an_override_that_is_not_key_value_is_refused(bad):
    with pytest.raises(ValueError, match=f"override {bad!r} is not KEY=VALUE"):
        micro_settings(bad)


def test_rl_only_overrides_share_the_warm_up_and_the_warm_up_settings_do_not():
    base = warm_up_key()
    assert warm_up_key("shaping=0.5", "val_every=1", "group_size=4", "steps=2", "peak_tflops=1", "lr=0.5",
                       "dynamic_sampling=true", "checkpoint_every=5") == base
    assert warm_up_key(*AUDIT_SETTINGS) != base           # max_new=5: the audit's warm-up is its own entry
    assert warm_up_key("sft_eval_every=10") != base
