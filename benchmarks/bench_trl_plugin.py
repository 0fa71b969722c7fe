"""The registry plug-in's cost inside TRL: one update with the registry's grpo vs TRL's own loss_type='grpo'.

Installs nothing: without trl it prints how to get it and exits 0.
Usage: python benchmarks/bench_trl_plugin.py [--repeats 9] [--warmup 2] [--threads N]

Same model (bench_vs_trl's random tiny Llama), same shapes, same generation batch: each round generates
one batch (TRL's sampling, scored by the task reward, made by the plug-in trainer) and then times, in
turn, on that same batch and from the same weights, one update of: TRL's GRPOTrainer with
loss_type='grpo'; RegistryGRPOTrainer with the registry's grpo (adv_eps 1e-4, as TRL), diagnostics off;
and the same with every diagnostic on (drive/reg split is absent for grpo, so also opo, whose split and
twin gradient cost two extra autograd passes). One update = TRL's compute_loss (training forward, loss),
backward, the step's diagnostics where on, grad-norm clipping, AdamW, zero_grad. Generation (identical
for all) is timed separately. Medians over --repeats rounds after --warmup.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_vs_trl import HEADS, LAYERS, LEVEL, LR, SHAPES, WIDTH, missing_dependency, task_reward  # noqa: E402

KINDS = ("trl", "plugin", "plugin+diag", "opo+diag")


def make_trainer(kind: str, model_dir: Path, prompts: int, group: int, new: int, out: Path):
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from opo_theory.integrations.trl import RegistryGRPOTrainer
    from opo_theory.integrations.trl_run import task_dataset

    args = GRPOConfig(
        output_dir=str(out / kind), use_cpu=True, seed=0, per_device_train_batch_size=prompts * group,
        gradient_accumulation_steps=1, num_generations=group, num_iterations=1, max_completion_length=new,
        temperature=1.0, top_p=1.0, top_k=0, beta=0.0, learning_rate=LR, max_grad_norm=1.0, max_steps=1000,
        report_to=[], save_strategy="no", disable_dropout=True, disable_tqdm=True,
        **({"loss_type": "grpo"} if kind == "trl" else {}))
    common = dict(model=str(model_dir), reward_funcs=task_reward, args=args, train_dataset=task_dataset(LEVEL, 4000, 0),
                  processing_class=AutoTokenizer.from_pretrained(model_dir, local_files_only=True))
    if kind == "trl":
        tr = GRPOTrainer(**common)
    else:
        diag = kind.endswith("+diag")
        tr = RegistryGRPOTrainer(**common, objective="opo" if kind.startswith("opo") else "grpo",
                                 objective_config={} if kind.startswith("opo") else {"adv_eps": 1e-4},
                                 diagnostics=diag, twin_grad=diag, confidence_metrics=diag)
    tr.create_optimizer_and_scheduler(num_training_steps=1000)
    tr.current_gradient_accumulation_steps = 1
    tr.model.train()
    tr.accelerator.gradient_state._set_sync_gradients(True)
    return tr


def update(tr, inputs) -> float:
    """Wall time of one update of ``tr`` on ``inputs``."""
    params = [p for p in tr.model.parameters() if p.requires_grad]
    start = time.perf_counter()
    loss = tr.compute_loss(tr.model, inputs)
    tr.accelerator.backward(loss)
    if hasattr(tr, "after_backward"):
        tr.after_backward(tr.model)
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    tr.optimizer.step()
    tr.model.zero_grad()
    return time.perf_counter() - start


def run_shape(model_dir, prompts, group, new, repeats, warmup, tmp) -> dict:
    trainers = {k: make_trainer(k, model_dir, prompts, group, new, tmp) for k in KINDS}
    start = {k: [p.detach().clone() for p in tr.model.parameters()] for k, tr in trainers.items()}
    data = trainers["plugin"].train_dataset
    times = {k: [] for k in (*KINDS, "generate")}
    for r in range(warmup + repeats):
        rows = [{"prompt": data[i]["prompt"], "answer": data[i]["answer"]}
                for i in range(r * prompts, (r + 1) * prompts) for _ in range(group)]
        t0 = time.perf_counter()
        inputs = trainers["plugin"]._generate_and_score_completions(rows)
        gen = time.perf_counter() - t0
        for kind, tr in trainers.items():
            with torch.no_grad():          # every update starts from the same weights
                for p, p0 in zip(tr.model.parameters(), start[kind], strict=True):
                    p.copy_(p0)
            t = update(tr, inputs)
            if r >= warmup:
                times[kind].append(t)
        if r >= warmup:
            times["generate"].append(gen)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    missing = missing_dependency()
    if missing:
        print(f"bench_trl_plugin needs trl ({missing}): pip install -e '.[trl]'")
        return 0
    import transformers
    import trl

    from opo_theory.lm.models.tiny_hf import build_tiny_model

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, threads "
          f"{torch.get_num_threads()}, cpu; medians of {args.repeats} interleaved rounds after {args.warmup}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "tiny-llama", "llama", layers=LAYERS, width=WIDTH, heads=HEADS,
                                     vocab_size=64, positions=64)
        for prompts, group, new in SHAPES:
            m = run_shape(model_dir, prompts, group, new, args.repeats, args.warmup, tmp)
            print(f"update {prompts}x{group}x{new}: TRL grpo {m['trl'] * 1e3:6.1f} ms | registry grpo "
                  f"{m['plugin'] * 1e3:6.1f} ms ({m['plugin'] / m['trl']:.2f}x) | + diagnostics "
                  f"{m['plugin+diag'] * 1e3:6.1f} ms ({m['plugin+diag'] / m['trl']:.2f}x) | opo + diagnostics "
                  f"{m['opo+diag'] * 1e3:6.1f} ms ({m['opo+diag'] / m['trl']:.2f}x)   [generation "
                  f"{m['generate'] * 1e3:.1f} ms, the same for all]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
