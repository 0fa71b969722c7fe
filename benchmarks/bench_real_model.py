"""Our RL step against TRL's GRPOTrainer on a real pretrained LLM (SmolLM2-135M-Instruct), side by side.

Usage: python benchmarks/bench_real_model.py [--model smollm2-135m | --model hf:DIR] [--rounds 3] [--steps 2]
       [--precision fp32|bf16] [--shape 8x4x32] [--json FILE]
Needs trl, transformers and datasets (pip install -e '.[bench]'); without them it says so and exits 0.

Each measurement is a fresh worker process (one torch thread, OMP_NUM_THREADS=1) that loads the model, runs
one warm-up RL step, resets its peak-RSS mark (/proc/self/clear_refs) and times ``--steps`` steps: CPU
seconds (process_time) and wall seconds per step, the step-phase peak RSS (VmHWM) and the process's whole
peak (ru_maxrss, model loading included). The workers are interleaved, round after round, so a change of the
machine's load falls on every side alike; the table gives medians over all timed steps. Sides:

- ``trl``: GRPOTrainer (TRL 1.16), one generation round per optimizer step (steps_per_generation =
  gradient_accumulation_steps = num_iterations = 1, beta = 0, loss_type grpo), timed from on_step_begin to
  on_step_end: tokenization, model.generate, decoding, reward, advantages, the training forward, backward,
  clipping, AdamW (TRL reuses the training forward's log-probs as pi_old: no extra forward).
- ``lean``: ``Trainer.rl_step()`` for grpo with ppo_epochs = minibatches = 1 and the extra diagnostics off
  (grad_split, approx_grad, trust_region_metrics): sampling with a KV cache and one prefill per group,
  rewards, the training forward (pi_old from the same forward), backward, clipping, AdamW, the step's metrics
  (confidence bins, grad/update_norm, ...).
- ``full``: the same step with every diagnostic on: for grpo the trust-region forward (grpo reports no
  drive/regularizer parts and has no exact-ratio twin).
- ``opo-lean``, ``opo-full``: OPO, where full also takes the drive part's and the exact loss's gradients
  (two extra backwards, once per step) besides the trust-region forward.

Work per step is the same on every side: the same model and weights, prompts x completions x max new tokens,
sampling at temperature 1 (top_p 1, no top_k), raw task prompts (level 3), on which the instruct model rarely
ends early, so nearly every completion runs to the limit (mean lengths are reported). Model FLOPs per step:
opo_theory.lm.training.throughput.rl_step_flops (PaLM-style, 8N per processed token: rollout 2N, one update 6N);
GFLOP per CPU-second is set beside a single-thread matmul peak measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from bench_vs_trl import LEAN, missing_dependency, task_reward

SIDES = ("trl", "lean", "full", "opo-lean", "opo-full")
LEVEL, LR = 3, 1e-6


def model_dir(spec: str) -> Path:
    """The local save_pretrained directory of ``spec``: 'hf:DIR', or a named/'gguf:' model (converted once)."""
    if spec.startswith("hf:"):
        return Path(spec[3:])
    from opo_theory.lm.models.pretrained import pretrained_dir

    return pretrained_dir(spec)


# ---------------------------------------------------------------------------------------- worker side
def reset_peak_rss() -> None:
    """Start a new VmHWM (peak resident set) mark for this process (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss_gib() -> tuple[float, float]:
    """(VmHWM since the last reset, ru_maxrss of the whole process) in GiB."""
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    return hwm / 2**20, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class StepClock:
    """Wall and CPU seconds of each step after the first ``warmup`` (the peak-RSS mark reset after those)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.done, self.wall, self.cpu = warmup, 0, [], []

    def begin(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def end(self) -> None:
        wall, cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
        self.done += 1
        if self.done > self.warmup:
            self.wall.append(wall)
            self.cpu.append(cpu)
        elif self.done == self.warmup:
            reset_peak_rss()


def run_trl(directory: Path, shape: tuple[int, int, int], steps: int, bf16: bool, tmp: Path) -> dict:
    import datasets
    from transformers import AutoTokenizer, PrinterCallback, ProgressCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from opo_theory.lm.tasks.arithmetic import problems

    prompts, group, new = shape
    clock, lengths = StepClock(1), []

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            clock.begin()

        def on_step_end(self, args, state, control, **kw):
            clock.end()
            lengths.append(trainer._metrics["train"]["completions/mean_length"][-1])

    items = problems(LEVEL, "train", 4000, 0)
    data = datasets.Dataset.from_dict({"prompt": [p.prompt for p in items], "answer": [p.answer for p in items]})
    args = GRPOConfig(
        output_dir=str(tmp), use_cpu=True, bf16=bf16, seed=0, per_device_train_batch_size=prompts * group,
        gradient_accumulation_steps=1, steps_per_generation=1, num_generations=group, num_iterations=1,
        max_completion_length=new, temperature=1.0, top_p=1.0, top_k=0, beta=0.0, loss_type="grpo",
        learning_rate=LR, weight_decay=0.0, max_grad_norm=1.0, lr_scheduler_type="constant",
        max_steps=1 + steps, logging_strategy="no", report_to=[], save_strategy="no", dataloader_num_workers=0,
        disable_dropout=True, log_completions=False, disable_tqdm=True)
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    trainer = GRPOTrainer(model=str(directory), reward_funcs=task_reward, args=args, train_dataset=data,
                          processing_class=tokenizer, callbacks=[Timer()])
    for quiet in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(quiet)
    trainer.train()
    prompt_tokens = statistics.mean(len(tokenizer(p.prompt).input_ids) for p in items[:256])
    return {"wall": clock.wall, "cpu": clock.cpu, "length": statistics.mean(lengths[1:]),
            "prompt_tokens": prompt_tokens, "params": sum(p.numel() for p in trainer.model.parameters())}


def run_ours(side: str, directory: Path, shape: tuple[int, int, int], steps: int, bf16: bool, tmp: Path) -> dict:
    from opo_theory.lm.training.config import make_config
    from opo_theory.lm.training.trainer import start_run

    prompts, group, new = shape
    objective = "opo" if side.startswith("opo") else "grpo"
    settings = [f"prompts_per_step={prompts}", f"group_size={group}", f"max_new={new}", "ppo_epochs=1",
                "minibatches=1", "sft_max_steps=0", f"sft_cache={tmp}/sft", "val_every=1000000",
                f"train_level={LEVEL}", "temperature=1.0", "top_p=1.0", f"lr={LR}", "weight_decay=0.0",
                "grad_clip=1.0", f"bf16={str(bf16).lower()}"] + (LEAN if side.endswith("lean") else [])
    cfg = make_config(objective, "cpu-tiny", 0, settings, steps=1 + steps, model=f"hf:{directory}")
    trainer = start_run(cfg, tmp / "run", quiet=True)
    clock, lengths = StepClock(1), []
    for _ in range(1 + steps):
        clock.begin()
        row = trainer.rl_step()
        clock.end()
        lengths.append(row["completions/mean_length"])
    return {"wall": clock.wall, "cpu": clock.cpu, "length": statistics.mean(lengths[1:]),
            "params": trainer.n_params}


def worker(side: str, directory: Path, shape: tuple[int, int, int], steps: int, bf16: bool) -> dict:
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        run = run_trl if side == "trl" else lambda *a: run_ours(side, *a)
        out = run(directory, shape, steps, bf16, Path(tmp))
    out["step_peak_gib"], out["process_peak_gib"] = peak_rss_gib()
    return out


# ---------------------------------------------------------------------------------------- parent side
def matmul_peak_gflops(dtype_name: str, n: int = 1024, repeats: int = 20) -> float:
    """Single-thread GEMM throughput per CPU-second (2 n³ FLOPs per n x n product), the best of ``repeats``
    (CPU time, like the steps: time the process waits for a core on a loaded machine is not counted)."""
    import torch

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def timed(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def spawn(side: str, args) -> dict:
    """One worker process; its last stdout line is its JSON result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", side, "--model", f"hf:{args.dir}", "--shape", args.shape,
           "--steps", str(args.steps), "--precision", args.precision]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {side} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict, args, peaks: dict, load: list[float]) -> str:
    from opo_theory.lm.training.throughput import rl_step_flops

    prompts, group, new = parse_shape(args.shape)
    rows = prompts * group
    med = {s: {k: statistics.median(sum((r[k] for r in rs), [])) for k in ("cpu", "wall")}
           for s, rs in results.items()}
    prompt_tokens = results["trl"][0]["prompt_tokens"]
    lines = [f"SmolLM2-135M-Instruct ({results['trl'][0]['params'] / 1e6:.1f}M parameters), step "
             f"{args.shape} (prompts x completions x max new tokens), {args.precision}, 1 thread per process; "
             f"{args.rounds} interleaved rounds x {args.steps} timed steps per side (after 1 warm-up step); "
             f"load average during the run {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores; "
             f"single-thread matmul peak fp32 {peaks['float32']:.0f}, bf16 {peaks['bfloat16']:.0f} GFLOP/s",
             "", "| side | CPU-s / step (median) | wall-s / step | vs TRL (CPU-s) | mean completion tokens | "
             "GFLOP per CPU-s | % of matmul peak | step peak RSS GiB | process peak RSS GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    peak = peaks["bfloat16" if args.precision == "bf16" else "float32"]
    for side, rs in results.items():
        length = statistics.mean(r["length"] for r in rs)
        flops = rl_step_flops(rs[0]["params"], round(rows * (prompt_tokens + length)), 1)
        rate = flops / med[side]["cpu"] / 1e9
        lines.append(f"| {side} | {med[side]['cpu']:.2f} | {med[side]['wall']:.2f} | "
                     f"{med['trl']['cpu'] / med[side]['cpu']:.2f}x | {length:.1f} | {rate:.1f} | "
                     f"{100 * rate / peak:.0f}% | {max(r['step_peak_gib'] for r in rs):.2f} | "
                     f"{max(r['process_peak_gib'] for r in rs):.2f} |")
    lines += ["", "Targets (speed, memory, diagnostics cost): " + targets(med, results)]
    return "\n".join(lines)


def targets(med: dict, results: dict) -> str:
    """Each target with its measured value and whether it is met."""
    if "trl" not in med or "lean" not in med:
        return "trl or lean missing"
    speed = med["trl"]["cpu"] / med["lean"]["cpu"]
    mem = {s: max(r["step_peak_gib"] for r in results[s]) for s in results}
    parts = [f"lean >= 1.5x TRL: {speed:.2f}x ({'met' if speed >= 1.5 else 'NOT met'})",
             f"lean step peak RSS within 10% of TRL's: {mem['lean'] / mem['trl'] - 1:+.0%} "
             f"({'met' if mem['lean'] <= 1.1 * mem['trl'] else 'NOT met'})"]
    for full, lean in (("full", "lean"), ("opo-full", "opo-lean")):
        if full in med and lean in med:
            r = med[full]["cpu"] / med[lean]["cpu"]
            parts.append(f"{full} <= 2x {lean}: {r:.2f}x ({'met' if r <= 2 else 'NOT met'})")
    return "; ".join(parts)


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        prompts, group, new = (int(x) for x in text.split("x"))
    except ValueError:
        raise SystemExit(f"--shape {text!r}: expected PROMPTSxGROUPxNEW, e.g. 8x4x32") from None
    return prompts, group, new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="smollm2-135m, gguf:PATH or hf:DIR")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one worker per side each)")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per worker (after 1 warm-up step)")
    ap.add_argument("--shape", default="8x4x32", help="prompts x completions per prompt x max new tokens")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"comma list of {', '.join(SIDES)}")
    ap.add_argument("--json", type=Path, help="also write the raw per-worker results here")
    ap.add_argument("--from-json", type=Path, nargs="+", help="print the table of saved --json runs (merged)")
    ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.from_json:
        saved = [json.loads(f.read_text()) for f in args.from_json]
        for key in ("rounds", "steps", "shape", "precision"):
            setattr(args, key, saved[0]["args"][key])
        args.rounds = sum(int(x["args"]["rounds"]) for x in saved)
        merged = {s: sum((x["results"].get(s, []) for x in saved), []) for s in SIDES}
        print(table({s: rs for s, rs in merged.items() if rs}, args, saved[0]["peaks"],
                    sum((x["load"] for x in saved), [])))
        return 0
    missing = missing_dependency()
    if missing:
        print(f"bench_real_model needs trl, transformers and datasets ({missing}): pip install -e '.[bench]'")
        return 0
    args.dir = model_dir(args.model)
    shape = parse_shape(args.shape)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dir, shape, args.steps, args.precision == "bf16")))
        return 0
    sides = [s for s in args.sides.split(",") if s]
    if "trl" not in sides or "lean" not in sides or any(s not in SIDES for s in sides):
        raise SystemExit(f"--sides {args.sides!r}: a comma list of {', '.join(SIDES)} holding trl and lean")
    peaks = {d: matmul_peak_gflops(d) for d in ("float32", "bfloat16")}
    results, load, failed = {s: [] for s in sides}, [os.getloadavg()[0]], []
    for r in range(args.rounds):
        for side in sides:
            try:
                results[side].append(spawn(side, args))
            except RuntimeError as exc:         # e.g. killed for memory on a shared machine: say so, go on
                failed.append(f"round {r + 1} {side}: {str(exc).splitlines()[0]}")
                print(failed[-1], file=sys.stderr)
                continue
            load.append(os.getloadavg()[0])
            last = results[side][-1]
            print(f"round {r + 1}/{args.rounds} {side}: CPU-s/step {last['cpu']}, step peak RSS "
                  f"{last['step_peak_gib']:.2f} GiB", file=sys.stderr)
            if args.json:                       # after every worker: a later failure loses nothing
                args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                 "peaks": peaks, "load": load, "results": results,
                                                 "failed": failed}, indent=1))
    results = {s: rs for s, rs in results.items() if rs}
    print(table(results, args, peaks, load) + "".join(f"\nFAILED {f}" for f in failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
