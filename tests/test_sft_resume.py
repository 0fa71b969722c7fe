"""An interrupted SFT warm-up resumes from its last accuracy check (sft-<key>.partial beside the cache entry) and
caches bitwise the weights of an uninterrupted warm-up; its progress lines give step, val accuracy and time."""

from __future__ import annotations

import pytest
import torch

from opo_theory.lm.progress import Interrupted
from opo_theory.lm.training import sft
from opo_theory.lm.training.checkpoint import load_state
from opo_theory.lm.training.config import make_config

WARM = ["n_layer=1", "n_embd=16", "n_head=2", "pool_size=200", "val_size=10", "train_level=2", "ood_level=3",
        "sft_batch=16", "sft_max_steps=20", "sft_eval_every=5", "sft_target_accuracy=1"]


def warm_up(cache, monkeypatch=None, stop_at_call=None):
    """warm_start with its cache in ``cache``; Ctrl-C (KeyboardInterrupt) on the ``stop_at_call``-th SFT step."""
    cfg = make_config("opo", "cpu-tiny", 0, [*WARM, f"sft_cache={cache}"])
    if stop_at_call is not None:
        real, calls = sft.sft_step, []

        def step(*args, **kwargs):
            calls.append(1)
            if len(calls) == stop_at_call:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        monkeypatch.setattr(sft, "sft_step", step)
    sft.warm_start(cfg, sft.task_pools(cfg), quiet=False)
    return cache / f"sft-{cfg.sft_key()}.pt"


def test_an_interrupted_warm_up_resumes_and_caches_the_uninterrupted_weights(tmp_path, monkeypatch, capsys):
    whole = warm_up(tmp_path / "whole")
    with pytest.raises(Interrupted) as info:                     # 12 steps done: the check at step 10 is saved
        warm_up(tmp_path / "cut", monkeypatch, stop_at_call=13)
    partial = tmp_path / "cut" / whole.with_suffix(".partial").name
    assert info.value.where == "SFT warm-up step 12/20"
    assert info.value.restarts == f"a rerun resumes the warm-up at step 10 (its last accuracy check, saved in {partial})"
    assert partial.is_file() and not (tmp_path / "cut" / whole.name).exists()
    assert load_state(partial)["step"] == 10
    monkeypatch.undo()
    capsys.readouterr()
    resumed = warm_up(tmp_path / "cut")
    err = capsys.readouterr().err
    assert "sft: resuming the interrupted warm-up at step 10/20 (val accuracy " in err and str(partial) in err
    assert "sft step 5/20" not in err and "sft step 15/20" in err and "since the resume at step 10" in err
    assert not partial.exists()                                   # the finished warm-up needs no partial
    a, b = load_state(whole), load_state(resumed)
    assert a["info"] == b["info"] and a["info"]["sft_steps"] == 20
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_an_interruption_before_the_first_check_says_the_warm_up_starts_over(tmp_path, monkeypatch):
    with pytest.raises(Interrupted) as info:
        warm_up(tmp_path, monkeypatch, stop_at_call=3)
    assert info.value.restarts == "no accuracy check was saved yet, so a rerun starts the warm-up over"
    assert not list(tmp_path.iterdir())


def test_sft_progress_names_step_accuracy_and_elapsed_time(tmp_path, capsys):
    warm_up(tmp_path)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("sft step")]
    assert [x.split(":")[0] for x in lines] == [f"sft step {k}/20" for k in (5, 10, 15, 20)]
    assert all(" val accuracy " in x and x.endswith(" s elapsed") for x in lines)


def test_a_partial_checkpoint_of_another_kind_is_refused_in_one_line(tmp_path):
    from opo_theory.lm.training.checkpoint import save_state

    cfg = make_config("opo", "cpu-tiny", 0, [*WARM, f"sft_cache={tmp_path}"])
    save_state(tmp_path / f"sft-{cfg.sft_key()}.partial", {"model": {}})
    with pytest.raises(ValueError, match=r"\.partial is not a partial SFT checkpoint \(it lacks acc, gen, opt, step, "
                                         r"torch_rng\); delete it to start the warm-up over"):
        sft.warm_start(cfg, sft.task_pools(cfg), quiet=True)


def test_a_long_stretch_between_checks_prints_a_progress_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sft, "HEARTBEAT_S", 0.0)                 # every step between two checks is "long"
    cfg = make_config("opo", "cpu-tiny", 0, [*WARM, "sft_max_steps=7", f"sft_cache={tmp_path}"])
    sft.warm_start(cfg, sft.task_pools(cfg), quiet=False)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("sft: step ")]
    assert [x.split(",")[0] for x in lines] == [f"sft: step {k}/7" for k in (1, 2, 3, 4, 6, 7)]
    assert lines[0].endswith(" s elapsed (next accuracy check at step 5)")
    assert lines[-1].endswith(" s elapsed (next accuracy check at step 7)")


def test_a_partial_checkpoint_that_cannot_be_written_does_not_stop_the_warm_up(tmp_path, capsys, monkeypatch):
    real = sft.save_state

    def full_disk_for_partials(path, state):
        if path.suffix == ".partial":
            raise OSError(28, "No space left on device")
        return real(path, state)
    monkeypatch.setattr(sft, "save_state", full_disk_for_partials)
    cfg = make_config("opo", "cpu-tiny", 0, [*WARM, "sft_max_steps=12", f"sft_cache={tmp_path}"])
    sft.warm_start(cfg, sft.task_pools(cfg), quiet=False)
    err = capsys.readouterr().err
    assert err.count("was not written ([Errno 28] No space left on device); the warm-up goes on") == 2   # steps 5, 10
    assert "sft step 10/12" in err and (tmp_path / f"sft-{cfg.sft_key()}.pt").is_file()
    assert not list(tmp_path.glob("*.partial"))
