"""Long LM work says what it does: SFT progress against its target, cache hits, resumes, a one-line Ctrl-C
(step reached, checkpoint it restarts from, the command that resumes; exit 130) whose command does resume,
an end-of-run summary equal to the logs, --quiet, and `figures --runs DIR` drawing a user's own compare output."""

import json
import shlex

import pytest
from conftest import micro_settings

from opo_theory.cli import main
from opo_theory.lm.training import sft
from opo_theory.lm.training.trainer import Trainer

MICRO = micro_settings("shaping=0.5", "sft_eval_every=10")      # tests/conftest.py's MICRO
STEPS = 6


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """This module's own SFT cache, empty at its start: its first test is about training the warm-up."""
    return tmp_path_factory.mktemp("sft")


def train_argv(out, cache, *extra, objective="opo"):
    return ["train", "--objective", objective, "--steps", str(STEPS), "--out", str(out),
            "--set", *MICRO, f"sft_cache={cache}", *extra]


def interrupt_at_call(monkeypatch, owner, name, call):
    """Make ``owner.name`` raise KeyboardInterrupt (what Ctrl-C raises) on its ``call``-th call."""
    real, calls = getattr(owner, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapped)


def rerun(line):
    """The command a Ctrl-C line ends with, run through main()."""
    words = shlex.split(line.split(": ", 2)[2])
    assert words[0] == "opo-theory"
    return main(words[1:])


def test_sft_shows_step_limit_and_target_then_a_cache_hit_says_where(cache, tmp_path, capsys):
    assert main(train_argv(tmp_path / "a", cache)) == 0
    err = capsys.readouterr().err
    entry = next(cache.glob("sft-*.pt"))
    assert "sft step 10/30: loss " in err and "(target 0.35)" in err
    assert f"then caching it at {entry}" in err and f"at step 30/30; cached at {entry}" in err
    assert main(train_argv(tmp_path / "b", cache)) == 0
    err = capsys.readouterr().err
    assert f"sft: cached warm-up policy loaded from {entry} (30 steps, val accuracy " in err
    assert "sft step" not in err


def test_the_summary_line_matches_the_logs(cache, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train_argv(out, cache)) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    reward = sum(r["reward/mean"] for r in rows) / len(rows)           # 6 steps < the 10-step tail
    val = [r for r in rows if "val/accuracy" in r][-1]
    err = capsys.readouterr().err.strip().splitlines()
    assert "[opo seed 0] evaluating the policy before RL (" in "\n".join(err)      # the silent minutes announced
    line = err[-1]
    assert line == (f"[opo seed 0] done, {STEPS}/{STEPS} steps: final reward {reward:.3f} (last {STEPS} steps), "
                    f"val accuracy {val['val/accuracy']:.3f}, OOD accuracy {val['val/ood_accuracy']:.3f} "
                    f"(last evaluation); logs: {out / 'metrics.jsonl'}")


def test_ctrl_c_in_train_is_one_line_whose_command_resumes(cache, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupt_at_call(monkeypatch, Trainer, "rl_step", 4)        # steps 0-2 done, checkpoint at step 2
    assert main(train_argv(out, cache, "--quiet")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err                                    # --quiet: nothing but the outcome line
    assert err[0].startswith(f"opo-theory: interrupted at step 3/{STEPS} of opo seed 0 ({out}); a resume "
                             "restarts from its checkpoint at step 2: opo-theory train --objective opo --seed 0 ")
    assert err[0].endswith(" --quiet --resume")
    monkeypatch.undo()
    assert rerun(err[0].replace(" --quiet", "")) == 0
    err2 = capsys.readouterr().err
    assert f"[opo seed 0] resumed {out} at step 2/{STEPS} (its last checkpoint)" in err2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(STEPS))


def test_ctrl_c_before_the_first_checkpoint_says_the_resume_starts_over(cache, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    interrupt_at_call(monkeypatch, Trainer, "rl_step", 2)
    assert main(train_argv(out, cache)) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert (f"interrupted at step 1/{STEPS} of opo seed 0 ({out}); no checkpoint yet (one every 2 steps), so a "
            "resume restarts it from step 0: ") in line and line.endswith("--resume")
    monkeypatch.undo()
    assert rerun(line) == 0
    assert f"{out} has no checkpoint yet: starting it over from step 0" in capsys.readouterr().err


def test_ctrl_c_in_the_sft_warm_up_names_its_step_and_the_check_a_rerun_resumes_at(tmp_path, monkeypatch, capsys):
    cache, out = tmp_path / "sft", tmp_path / "run"
    interrupt_at_call(monkeypatch, sft, "sft_loss", 13)          # 12 SFT steps done, the check at step 10 saved
    assert main(train_argv(out, cache)) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    partial = next(cache.glob("sft-*.partial"))
    assert line.startswith(f"opo-theory: interrupted at SFT warm-up step 12/30; a rerun resumes the warm-up at step "
                           f"10 (its last accuracy check, saved in {partial}): opo-theory train --objective opo ")
    assert "--resume" not in line                                 # no run was written: a plain rerun starts it
    assert not list(cache.glob("*.pt")) and not out.exists()      # nothing is cached before the warm-up ends


def test_resume_on_a_directory_without_a_run_says_so(cache, tmp_path, capsys):
    out = tmp_path / "empty"
    assert main(train_argv(out, cache, "--resume")) == 0
    assert (f"[opo seed 0] nothing to resume in {out} (no run there yet): starting a new run of {STEPS} steps"
            in capsys.readouterr().err)


def test_resuming_a_finished_run_says_its_logs_are_unchanged(cache, tmp_path, capsys):
    out = tmp_path / "done"
    assert main(train_argv(out, cache, "--quiet")) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out / 'metrics.jsonl'}"
    before = (out / "metrics.jsonl").read_bytes()
    assert main(train_argv(out, cache, "--quiet", "--resume")) == 0
    assert capsys.readouterr().out.strip() == f"unchanged: {out / 'metrics.jsonl'} (the run had already finished)"
    assert (out / "metrics.jsonl").read_bytes() == before


def test_ctrl_c_in_compare_names_the_run_and_resumes_it(cache, tmp_path, monkeypatch, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--objectives", "opo,grpo", "--seeds", "1", "--steps", "4", "--out", str(out),
            "--set", *MICRO, f"sft_cache={cache}"]
    interrupt_at_call(monkeypatch, Trainer, "rl_step", 4 + 3 + 1)     # opo done, grpo steps 0-2 done
    assert main(argv) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"opo-theory: interrupted at step 3/4 of grpo seed 0 ({out / 'grpo' / 'seed0'}), run 2 "
                           "of 2 of the comparison; a resume restarts from its checkpoint at step 2: opo-theory "
                           "compare --objectives opo,grpo --seeds 1 ")
    monkeypatch.undo()
    assert rerun(line) == 0
    err = capsys.readouterr().err
    assert "already finished (4/4 steps)" in err and f"resumed {out / 'grpo' / 'seed0'} at step 2/4" in err
    assert f"compare: 2 runs done; summary in {out / 'summary.md'}" in err
    assert (out / "summary.json").exists()


def test_figures_runs_draws_a_users_compare_output(cache, tmp_path, capsys):
    runs = tmp_path / "cmp"
    assert main(["compare", "--objectives", "opo,grpo", "--seeds", "2", "--steps", "6", "--out", str(runs),
                 "--quiet", "--set", *MICRO, f"sft_cache={cache}"]) == 0
    capsys.readouterr()
    assert main(["figures", "fig5-reward", "table1", "--runs", str(runs)]) == 0
    out = runs / "figures"
    assert f"2 artifact(s) into {out}, LM runs read from {runs}" in capsys.readouterr().err
    fig = json.loads((out / "fig5-reward.json").read_text())
    assert set(fig["data"]["reward/mean"]) == {"opo", "grpo"}
    rewards = [[json.loads(x)["reward/mean"] for x in (runs / "grpo" / f"seed{k}" / "metrics.jsonl").open()]
               for k in (0, 1)]
    moving = [[sum(r[s - 4:s + 1]) / 5 for s in (4, 5)] for r in rewards]       # the 5-step moving average
    grpo = fig["data"]["reward/mean"]["grpo"]
    assert grpo["step"] == [4, 5]
    assert grpo["mean"] == pytest.approx([(a + b) / 2 for a, b in zip(*moving)], abs=1e-12)
    assert (out / "table1.md").exists() and "opo" in (out / "table1.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--rerun"], "--runs and --rerun exclude each other"),
    (["claims-table"], "--runs: claims-table do(es) not draw from LM runs"),
])
def test_figures_runs_refuses_what_it_cannot_draw(tmp_path, capsys, extra, message):
    (tmp_path / "summary.json").write_text("{}")
    assert main(["figures", "--runs", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_figures_runs_names_what_the_directory_holds(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["figures", "--runs", str(tmp_path)]) == 2
    assert "holds a single `train` run" in capsys.readouterr().err
    assert main(["figures", "--runs", str(tmp_path / "nothing")]) == 2
    assert "holds no finished `compare` output (no summary.json)" in capsys.readouterr().err


def test_figures_rerun_says_where_it_trains(monkeypatch, capsys):
    from opo_theory.figures import runs, source
    from opo_theory.lm.experiments import compare

    calls = []
    monkeypatch.setattr(compare, "compare", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(source, "_RERUN_DONE", set())
    assert runs.compare_dir(rerun=True) == runs.RERUN_DIR
    assert runs.compare_dir(rerun=True) == runs.RERUN_DIR          # trained once per process
    assert len(calls) == 1 and calls[0][1] == {"resume": True}      # not quiet: its progress shows
    assert f"into {runs.RERUN_DIR.resolve()}; finished runs there are reused" in capsys.readouterr().err
