"""The one-shot GPU session of paper_repro/gpu_run.sh: smoke (incl. whether concurrent runs beat one at a time),
the gpu-small SFT warm-up, the audit of the SFT policy, opo/grpo/dapo x seeds at train L3 / OOD L4 until a
deadline, the audit of the final policies, step time, tokens/s and MFU. Every result lands in ``--out`` as it
is produced (at most 7 files), so a session cut short still returns what was done. ``--tiny`` runs the same
plan on the CPU in seconds.

    python paper_repro/gpu/device_run.py --out DIR [--tiny] [--budget SECONDS]   (with the repository on PYTHONPATH)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

OBJECTIVES = ("opo", "grpo", "dapo")
AUDIT_START = "opo,opo-code,opo-exact,gopo,grpo,dapo,gspo,dr-grpo,ppo-kl"
AUDIT_END = "opo,grpo,dapo"
FULL = {"preset": "gpu-small", "settings": ["sft_max_steps=3000", "val_every=25", "checkpoint_every=25"],
        "smoke": ["sft_max_steps=0", "val_every=1000", "checkpoint_every=1000"], "smoke_steps": 8,
        "parallel": (1, 3), "smoke_s": 35.0, "seeds": 3, "audit_seeds": 3, "updates": 8, "max_steps": 400, "budget": 480.0, "reserve_s": 80.0}
TINY = {"preset": "cpu-tiny", "settings": ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=20", "sft_batch=16",
                                           "pool_size=200", "val_size=10", "prompts_per_step=2", "group_size=4",
                                           "max_new=4", "val_every=2", "checkpoint_every=2", "train_level=2",
                                           "ood_level=3", "shaping=0.5"],
        "smoke": ["sft_max_steps=0", "val_every=1000", "checkpoint_every=1000"], "smoke_steps": 2,
        "parallel": (1, 2), "smoke_s": 90.0, "seeds": 1, "audit_seeds": 2, "updates": 2, "max_steps": 2, "budget": 900.0, "reserve_s": 60.0}


class Session:
    """Deadline, output directory and the JSON files written as the session goes."""

    def __init__(self, out: Path, work: Path, plan: dict, budget: float) -> None:
        self.out, self.work, self.plan = out, work, plan
        self.start = time.perf_counter()
        self.deadline = self.start + budget
        self.summary: dict = {"plan": {k: v for k, v in plan.items()}, "phases": {}}
        out.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def write(self, name: str, obj) -> None:
        """Strict, compact JSON, written atomically."""
        from opo_theory.io import dumps_json, write_text_atomic
        write_text_atomic(self.out / name, dumps_json(obj, separators=(",", ":")) + "\n")

    def phase(self, name: str, t0: float, **info) -> None:
        self.summary["phases"][name] = {"seconds": time.perf_counter() - t0, **info}
        self.write("summary.json", self.summary)
        print(f"[gpu-run] {name} done in {time.perf_counter() - t0:.1f} s ({self.elapsed():.0f} s elapsed, "
              f"{self.left():.0f} s left)", file=sys.stderr, flush=True)

    def settings(self, *extra: str) -> list[str]:
        return [*self.plan["settings"], f"sft_cache={self.work / 'sft-cache'}", *extra]


def train_command(s: Session, objective: str, seed: int, out: Path, steps: int, settings: list[str]) -> list[str]:
    return [sys.executable, "-m", "opo_theory", "train", "--objective", objective, "--seed", str(seed),
            "--preset", s.plan["preset"], "--out", str(out), "--steps", str(steps), "--quiet", "--set", *settings]


def step_rate(run_dir: Path) -> float:
    """Steady-state steps per second of one run (median step time over its steps after the first)."""
    from opo_theory.io import read_jsonl
    rows = read_jsonl(run_dir / "metrics.jsonl")
    times = [r["time/step_s"] for r in rows[1:] if r.get("time/step_s")]
    return 1.0 / statistics.median(times) if times else 0.0


def run_parallel(commands: list[list[str]], deadline: float, on_tick=None) -> list[int | None]:
    """Run the commands, at most len(commands) at once, until they finish or ``deadline`` (then SIGINT:
    the trainer's rows up to there are on disk). Returns exit codes (None for those stopped)."""
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands]
    last_tick = time.perf_counter()
    while any(p.poll() is None for p in procs):
        if time.perf_counter() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(2)
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
            return [None if p.returncode != 0 else 0 for p in procs]
        if on_tick is not None and time.perf_counter() - last_tick > 20:
            on_tick()
            last_tick = time.perf_counter()
        time.sleep(0.2)
    return [p.returncode for p in procs]


def smoke(s: Session) -> int:
    """Environment, then the same short run alone and k at once: the parallelism with the larger total rate."""
    import torch

    t0 = time.perf_counter()
    env = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    try:
        import transformers
        env["transformers"] = transformers.__version__
    except ImportError:
        env["transformers"] = None
    rates = {}
    for k in s.plan["parallel"]:
        dirs = [s.work / "smoke" / f"p{k}-{i}" for i in range(k)]
        cmds = [train_command(s, "grpo", i, d, s.plan["smoke_steps"], s.settings(*s.plan["smoke"])) for i, d in
                enumerate(dirs)]
        codes = run_parallel(cmds, time.perf_counter() + s.plan["smoke_s"])
        rates[k] = {"codes": codes, "steps_per_s_each": [step_rate(d) if c == 0 else 0.0 for d, c in zip(dirs, codes)]}
        rates[k]["steps_per_s_total"] = sum(rates[k]["steps_per_s_each"])
    best = max(rates, key=lambda k: rates[k]["steps_per_s_total"])
    s.write("smoke.json", {"env": env, "concurrency": {str(k): v for k, v in rates.items()}, "parallel": best})
    s.phase("smoke", t0, parallel=best, rates={str(k): v["steps_per_s_total"] for k, v in rates.items()})
    return best


def warm_up(s: Session) -> dict:
    from opo_theory.lm.training.config import make_config
    from opo_theory.lm.training.sft import task_pools, warm_start

    t0 = time.perf_counter()
    cfg = make_config("opo", s.plan["preset"], 0, s.settings())
    _, info = warm_start(cfg, task_pools(cfg))
    s.write("sft.json", info)
    s.phase("sft", t0, **info)
    return info


def audit(s: Session, name: str, objectives: str, checkpoints: list[Path | None]) -> None:
    """The audit of the SFT policy (checkpoint None) or of each run checkpoint, into one file ``name``."""
    from opo_theory.lm.experiments.audit import audit_config, run_audit

    t0 = time.perf_counter()
    records = {}
    for ck in checkpoints:
        label = "sft" if ck is None else f"{ck.parent.name}/{ck.name}"
        cfg = audit_config(s.plan["preset"], None if ck else s.settings(), None, None if ck is None else str(ck))
        out = s.work / "audit" / name / label.replace("/", "-")
        path = run_audit(cfg, out, checkpoint=None if ck is None else str(ck), objectives=objectives.split(","),
                         seeds=s.plan["audit_seeds"], updates=s.plan["updates"], resume=True, quiet=True)
        records[label] = json.loads(path.read_text())
        s.write(name, records)
    s.phase(name.removesuffix(".json"), t0, policies=list(records))


def pack_runs(s: Session) -> None:
    """runs.tar.gz: config.json and metrics.jsonl of every run so far (atomic)."""
    from opo_theory.io import write_bytes_atomic
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in sorted((s.work / "runs").glob("*/seed*/*")):
            if f.name in ("config.json", "metrics.jsonl"):
                tar.add(f, arcname=str(f.relative_to(s.work)))
    write_bytes_atomic(s.out / "runs.tar.gz", buf.getvalue())


def median_of(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def train_runs(s: Session, parallel: int, reserve: float) -> list[Path]:
    """opo/grpo/dapo x seeds, ``parallel`` at a time, steps sized to the time left (minus ``reserve``)."""
    from opo_theory.io import read_jsonl

    t0 = time.perf_counter()
    smoke_rate = json.loads((s.out / "smoke.json").read_text())["concurrency"][str(parallel)]["steps_per_s_total"]
    jobs = [(o, seed) for o in OBJECTIVES for seed in range(s.plan["seeds"])]
    waves = -(-len(jobs) // parallel)
    window = max(10.0, s.left() - reserve)
    # sampled completions of a trained policy are shorter than the smoke's random ones: the rate is a floor
    steps = int(max(min(2, s.plan["max_steps"]), min(s.plan["max_steps"], 0.8 * window * smoke_rate / parallel / waves)))
    dirs = []
    for w in range(waves):
        wave = jobs[w * parallel:(w + 1) * parallel]
        cmds, wave_dirs = [], []
        for o, seed in wave:
            d = s.work / "runs" / o / f"seed{seed}"
            wave_dirs.append(d)
            cmds.append(train_command(s, o, seed, d, steps, s.settings()))
        deadline = time.perf_counter() + (s.left() - reserve) / (waves - w)
        run_parallel(cmds, deadline, on_tick=lambda: pack_runs(s))
        dirs += wave_dirs
        pack_runs(s)
    summary = {}
    for d in dirs:
        rows = read_jsonl(d / "metrics.jsonl") if (d / "metrics.jsonl").exists() else []
        tail = rows[max(1, len(rows) - 10):] or rows
        med = lambda k, tail=tail: median_of(tail, k)
        vals = [r for r in rows if "val/accuracy" in r]
        summary[f"{d.parent.name}/{d.name}"] = {
            "steps": len(rows), "accuracy_last10": med("accuracy"), "step_s": med("time/step_s"),
            "tokens_per_s": med("throughput/tokens_per_s"), "mfu": med("throughput/mfu"),
            "model_tflops": med("throughput/model_tflops"),
            "val_accuracy": vals[-1]["val/accuracy"] if vals else None,
            "ood_accuracy": vals[-1]["val/ood_accuracy"] if vals else None}
    s.summary["runs"] = summary
    s.phase("runs", t0, steps_planned=steps, parallel=parallel)
    return [d for d in dirs if (d / "checkpoint.pt").exists()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="paper_repro/gpu/device_run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/gpu-run"))
    ap.add_argument("--work", default=None, help="scratch directory (default $TMPDIR/opo-gpu-run-<out name>)")
    ap.add_argument("--tiny", action="store_true", help="the same plan on the CPU at toy size")
    ap.add_argument("--budget", type=float, help="seconds for the whole session (default 480; tiny 900, a guard only)")
    args = ap.parse_args(argv)
    plan = dict(TINY if args.tiny else FULL)
    if args.tiny:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out)
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / f"opo-gpu-run-{out.name}"
    s = Session(out, work, plan, args.budget or plan["budget"])
    parallel = smoke(s)
    warm_up(s)
    audit(s, "audit-start.json", AUDIT_START, [None])
    finals = train_runs(s, parallel, reserve=plan["reserve_s"])
    by_objective = [next((d for d in finals if d.parent.name == o), None) for o in OBJECTIVES]
    audit(s, "audit-end.json", AUDIT_END, [d for d in by_objective if d is not None])
    s.summary["total_s"] = s.elapsed()
    s.write("summary.json", s.summary)
    print(f"[gpu-run] finished in {s.elapsed():.0f} s; results in {out}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
