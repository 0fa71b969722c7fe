"""Crash safety: `opo-theory train` killed with SIGKILL (mid-checkpoint write, mid-metrics line, mid-SFT
cache write, and at random moments), then resumed with --resume, ends bit for bit where an uninterrupted
run ends: the same metrics rows (timings aside), each step once, the same final parameters, and no
half-written file left behind."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import micro_settings
from resume_check import timeless_rows

from opo_theory.lm.training.checkpoint import load_state

SETTINGS = micro_settings("val_every=3", "shaping=0.5", "sft_eval_every=10")      # tests/conftest.py's MICRO
STEPS = 8

# Runs the real CLI in a fresh interpreter; OPO_TEST_FAULT makes that process SIGKILL itself at one
# chosen moment of a write (a fault injected from here, not a hook in the package):
#   fsync:<name>:<n>  the n-th fsync of a temporary file whose name contains <name> (data written, not
#                     yet renamed into place: the atomic write is half done)
#   row:<step>        while appending the metrics row of <step>: half the line written and flushed
LAUNCHER = r"""
import os, signal, sys
from opo_theory import io as opo_io
from opo_theory.lm.training import trainer
fault = os.environ.get("OPO_TEST_FAULT", "")
kind, _, arg = fault.partition(":")
if kind == "fsync":
    name, n = arg.rsplit(":", 1)
    real_fsync, seen = os.fsync, []
    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            seen.append(fd)
            if len(seen) == int(n):
                os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)
    opo_io.os.fsync = fsync
elif kind == "row":
    real_line = trainer.json_line
    def json_line(row):
        line = real_line(row)
        if row["step"] == int(arg):
            out = sys.argv[sys.argv.index("--out") + 1]
            with open(os.path.join(out, "metrics.jsonl"), "a") as fh:
                fh.write(line[: len(line) // 2])
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return line
    trainer.json_line = json_line
from opo_theory.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def train(out, sft, resume=False, fault="", kill_after_rows=None, delay=0.0):
    """Run `opo-theory train` in a subprocess; returns its exit code (-9 when killed)."""
    argv = [sys.executable, "-c", LAUNCHER, "train", "--objective", "opo", "--seed", "5", "--quiet",
            "--steps", str(STEPS), "--out", str(out), *(x for s in SETTINGS + [f"sft_cache={sft}"]
                                                        for x in ("--set", s))]
    if resume:
        argv.append("--resume")
    env = {**os.environ, "OPO_TEST_FAULT": fault}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if kill_after_rows is not None:        # kill from outside once the run is that far, after a delay
        log = out / "metrics.jsonl"
        while proc.poll() is None and (not log.exists() or len(log.read_text().splitlines()) < kill_after_rows):
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode


def leftovers(*dirs):
    return [p for d in dirs for p in d.rglob("*.tmp")]


def final_parameters(out):
    blob = load_state(out / "checkpoint.pt")
    assert blob["step"] == STEPS
    return blob["model"]


def assert_same_run(out, reference):
    got, want = timeless_rows(out), timeless_rows(reference)
    assert [r["step"] for r in got] == list(range(STEPS))          # every step once, none missing
    assert got == want
    a, b = final_parameters(out), final_parameters(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    assert train(root / "reference", root / "sft") == 0
    return root


def test_kills_at_chosen_moments_then_resume_equals_the_uninterrupted_run(reference):
    out, sft = reference / "cut", reference / "sft"
    # 1. during the second checkpoint write (step 4): the temporary file is there, checkpoint.pt is step 2's
    assert train(out, sft, fault="fsync:.checkpoint.pt.:2") == -signal.SIGKILL
    assert leftovers(out) and load_state(out / "checkpoint.pt")["step"] == 2
    assert len(timeless_rows(out)) == 4
    # 2. resumed, then killed half-way through writing step 5's metrics row
    assert train(out, sft, resume=True, fault="row:5") == -signal.SIGKILL
    assert not (out / "metrics.jsonl").read_text().endswith("\n") and not leftovers(out)
    # 3. resumed, then killed from outside at a random moment after step 6's row
    assert train(out, sft, resume=True, kill_after_rows=7, delay=random.Random(0).uniform(0, 0.05)) == -9
    # 4. resumed to the end
    assert train(out, sft, resume=True) == 0
    assert_same_run(out, reference / "reference")
    assert not leftovers(out, sft)


def test_a_kill_while_writing_the_sft_cache_is_recovered(reference, tmp_path):
    sft = tmp_path / "sft"
    assert train(tmp_path / "run", sft, fault="fsync:.sft-:1") == -signal.SIGKILL
    assert leftovers(sft) and not list(sft.glob("*.pt"))         # a half-done cache write, no cache entry
    assert train(tmp_path / "run", sft, resume=True) == 0
    assert_same_run(tmp_path / "run", reference / "reference")
    assert not leftovers(tmp_path / "run", sft) and len(list(sft.glob("*.pt"))) == 1


@pytest.mark.slow
def test_random_kills_then_resume_equal_the_uninterrupted_run(reference, tmp_path):
    """Ten SIGKILLs at random moments (seeded), resuming after each, until the run completes."""
    rng, out, kills = random.Random(1), tmp_path / "cut", 0
    code = train(out, reference / "sft", kill_after_rows=rng.randint(0, STEPS - 1), delay=rng.uniform(0, 0.3))
    while code != 0:
        kills += 1
        assert code == -signal.SIGKILL and kills <= 30
        done = len(timeless_rows(out)) if (out / "metrics.jsonl").exists() else 0
        if kills < 10:
            code = train(out, reference / "sft", resume=True, kill_after_rows=rng.randint(done, STEPS),
                         delay=rng.uniform(0, 0.3))
        else:
            code = train(out, reference / "sft", resume=True)
    assert kills >= 10
    assert_same_run(out, reference / "reference")
    assert not leftovers(out, reference / "sft")
