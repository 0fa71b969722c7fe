"""Benchmark the confidence diagnostics: the lean RL step with the per-step `conf/*`, `grad/norm_applied`,
`grad/update_norm` and `delta/abs_max_update` keys against the same trainer without them (the current
trainer.py with those lines removed, loaded as a second module), interleaved step by step, medians; and,
with --default-run, the wall time of the default `opo-theory audit` (cpu-tiny SFT policy, 9 objectives,
3 seeds, 8 updates). Usage, from the repository root: PYTHONPATH=. python benchmarks/bench_audit.py [--repeats 15]
[--default-run] (PYTHONPATH: this checkout's package, not an installed one)
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_lm import LEAN, MODEL, SHAPES

from opo_theory.lm.training.config import make_config

ROOT = Path(__file__).resolve().parents[1]
CHANGED = (   # (line of lm/update.py, what it becomes without the confidence diagnostics)
    ("    caught = TokenGrad(batch.logp) if log else None            # dL/dlogp from the backward itself\n",
     ""),
    ("        moved = step_and_measure(opt, params)        # the same step as opt.step(), its size measured\n",
     "        opt.step()\n"),
    ("    token_grad = caught.value\n", "    token_grad = None\n"),
    ("    metrics.update(step_metrics(batch, token_grad, metrics[\"grad/norm\"], clip, moved))\n", ""),
    ("    drive = caught.values[1] if extra and extra[0][0] == \"drive\" and len(caught.values) > 1 else None\n",
     "    drive = None\n"))


def _module(name: str, source: str):
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                    # dataclasses look their module up
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)     # noqa: S102 - our own files
    return module


def trainer_without_confidence():
    """start_run of the current trainer.py whose update (lm/update.py) lacks the lines that log the confidence
    diagnostics."""
    source = (ROOT / "opo_theory" / "lm" / "update.py").read_text()
    for line, without in CHANGED:
        if line not in source:
            raise SystemExit(f"update.py changed: cannot find the line {line.strip()!r}")
        source = source.replace(line, without)
    trainer = _module("trainer_before", (ROOT / "opo_theory" / "lm" / "trainer.py").read_text())
    trainer.policy_update = _module("update_before", source).policy_update
    return trainer.start_run


def lean_overhead(repeats: int) -> None:
    from opo_theory.lm.training.trainer import start_run

    Before = trainer_without_confidence()
    with tempfile.TemporaryDirectory() as tmp:
        for prompts, group, new in SHAPES:
            for objective in ("grpo", "opo"):
                settings = MODEL + LEAN + [f"prompts_per_step={prompts}", f"group_size={group}", f"max_new={new}",
                                           "ppo_epochs=1", "minibatches=1", "sft_max_steps=0", f"sft_cache={tmp}/sft",
                                           "val_every=1000000", "train_level=3"]
                cfg = make_config(objective, "cpu-tiny", 0, settings, steps=1)
                runs = {"with": start_run(cfg, f"{tmp}/w-{objective}-{new}", quiet=True),
                        "without": Before(cfg, f"{tmp}/o-{objective}-{new}", quiet=True)}
                times = {k: [] for k in runs}
                for t in runs.values():
                    t.rl_step()                                  # warm-up
                for _ in range(repeats):
                    for k, t in runs.items():                    # same seed: identical rollouts step by step
                        start = time.perf_counter()
                        t.rl_step()
                        times[k].append(time.perf_counter() - start)
                med = {k: statistics.median(v) for k, v in times.items()}
                print(f"lean RL step {prompts}x{group}x{new} {objective:4s}: without {med['without'] * 1e3:6.1f} ms, "
                      f"with {med['with'] * 1e3:6.1f} ms, ratio {med['with'] / med['without']:.3f}", flush=True)


def default_run() -> None:
    from opo_theory.lm.experiments.audit import audit_config, run_audit

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run_audit(audit_config("cpu-tiny", None, None, None), Path(tmp) / "audit", quiet=False)
        print(f"default audit (SFT cached): {time.perf_counter() - start:.0f} s wall", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--default-run", action="store_true")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu", file=sys.stderr)
    lean_overhead(args.repeats)
    if args.default_run:
        default_run()


if __name__ == "__main__":
    main()
