"""Time TRL's GRPOTrainer against this project's trainer on the same model, shapes and thread count.

Installs nothing: without ``trl`` (and transformers, datasets) it prints how to get them and exits 0.
Usage: python benchmarks/bench_vs_trl.py [--repeats 7] [--threads N] [--warmup 2]

Model: one random-weight local Llama (4 layers, width 128, 4 heads, the task's 64-token BPE tokenizer)
built with opo_theory.lm.models.tiny_hf; TRL loads it from its directory, our trainer as ``hf:<dir>``, so both
train the same weights and architecture from random init (no SFT on either side). A third line times our
trainer on the built-in char GPT of the same depth/width.

What one timed step is on each side (one generation round + one update, GRPO, beta = 0, one iteration):
- TRL: wall time from the HF Trainer's ``on_step_begin`` to its ``on_step_end`` callback with
  steps_per_generation = gradient_accumulation_steps = num_iterations = 1, so every step generates:
  prompt tokenization, ``model.generate`` on prompts x 6 rows (each prompt prefilled 6 times), decoding,
  the reward function, group advantages, the training forward (log-probs and entropy of the completion
  tokens), loss, backward, grad-norm clipping, AdamW, the LR scheduler and zero_grad. The old log-probs
  are not recomputed (TRL uses the training forward's, detached). Not timed: fetching the dataloader
  batch (before on_step_begin) and logging (off).
- ours: ``Trainer.rl_step()`` with ppo_epochs = minibatches = 1 and the lean switches: prompt sampling,
  KV-cached generation with one prefill per group, decoding, rewards, the training forward (anchor
  log-probs from that same forward), loss, backward, clipping, AdamW, and the step's metrics.
Both sample at temperature 1.0 (top_p 1, no top_k), stop a row at <eos>, at most ``new`` tokens.
Steps are interleaved: each TRL step is followed (outside its timed window) by one ours-hf and one
ours-char step; the first ``--warmup`` steps of each are discarded; medians of ``--repeats`` steps.
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

from opo_theory.lm.models.tiny_hf import build_tiny_model
from opo_theory.lm.tasks.arithmetic import problems, reward
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.trainer import Trainer, start_run

SHAPES = ((8, 6, 8), (16, 6, 32))          # prompts x completions per prompt x max new tokens
LAYERS, WIDTH, HEADS = 4, 128, 4
LEVEL, LR = 3, 1e-4
LEAN = ["trust_region_metrics=false", "grad_split=false", "approx_grad=false"]


def missing_dependency() -> str | None:
    try:
        import datasets  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def task_reward(completions, answer, **_) -> list[float]:
    """opo_theory.lm.tasks.arithmetic.reward (no shaping) as a TRL reward function; ``answer`` is a dataset column."""
    return [reward(c, a)[0] for c, a in zip(completions, answer)]


def ours(model: str, prompts: int, group: int, new: int, out: Path, extra=()) -> Trainer:
    settings = [f"prompts_per_step={prompts}", f"group_size={group}", f"max_new={new}", "ppo_epochs=1",
                "minibatches=1", "sft_max_steps=0", f"sft_cache={out}/sft", "val_every=1000000",
                f"train_level={LEVEL}", "temperature=1.0", "top_p=1.0", f"lr={LR}", "weight_decay=0.0",
                "grad_clip=1.0", f"n_layer={LAYERS}", f"n_embd={WIDTH}", f"n_head={HEADS}"] + LEAN + list(extra)
    cfg = make_config("grpo", "cpu-tiny", 0, settings, steps=1, model=model)
    return start_run(cfg, out, quiet=True)


def trl_trainer(model_dir: Path, prompts: int, group: int, new: int, steps: int, out: Path, callback):
    import datasets
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    items = problems(LEVEL, "train", 4000, 0)
    data = datasets.Dataset.from_dict({"prompt": [p.prompt for p in items], "answer": [p.answer for p in items]})
    args = GRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=False, seed=0,
        per_device_train_batch_size=prompts * group,      # rows = completions; prompts distinct prompts x group
        gradient_accumulation_steps=1, steps_per_generation=1, num_generations=group, num_iterations=1,
        max_completion_length=new, temperature=1.0, top_p=1.0, top_k=0, beta=0.0, loss_type="grpo",
        learning_rate=LR, weight_decay=0.0, max_grad_norm=1.0, lr_scheduler_type="constant", max_steps=steps,
        logging_strategy="no", report_to=[], save_strategy="no", dataloader_num_workers=0,
        disable_dropout=True, log_completions=False, disable_tqdm=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return GRPOTrainer(model=str(model_dir), reward_funcs=task_reward, args=args, train_dataset=data,
                       processing_class=tokenizer, callbacks=[callback])


def run_shape(model_dir: Path, prompts: int, group: int, new: int, repeats: int, warmup: int, tmp: Path) -> dict:
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    ours_hf = ours(f"hf:{model_dir}", prompts, group, new, tmp / f"ours-hf-{new}")
    ours_char = ours("char-gpt", prompts, group, new, tmp / f"ours-char-{new}")
    times = {"trl": [], "hf": [], "char": []}
    lengths = {"trl": [], "hf": [], "char": []}

    def ours_step(key: str, trainer: Trainer, keep: bool) -> None:
        start = time.perf_counter()
        m = trainer.rl_step()
        if keep:
            times[key].append(time.perf_counter() - start)
            lengths[key].append(m["completions/mean_length"])

    class Interleave(TrainerCallback):
        """Times each TRL step; after it (outside the timed window) runs one step of each of ours."""

        trainer = None

        def on_step_begin(self, args, state, control, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            elapsed = time.perf_counter() - self.start
            keep = state.global_step > warmup
            if keep:
                times["trl"].append(elapsed)
                lengths["trl"].append(self.trainer._metrics["train"]["completions/mean_length"][-1])
            ours_step("hf", ours_hf, keep)
            ours_step("char", ours_char, keep)

    callback = Interleave()
    trl = trl_trainer(model_dir, prompts, group, new, warmup + repeats, tmp / f"trl-{new}", callback)
    callback.trainer = trl
    for quiet in (PrinterCallback, ProgressCallback):       # the end-of-train summary line
        trl.remove_callback(quiet)
    trl.train()
    return {"times": times, "lengths": lengths,
            "params": {"trl": sum(p.numel() for p in trl.model.parameters()),
                       "hf": ours_hf.n_params, "char": ours_char.n_params}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed steps per side and shape (median)")
    ap.add_argument("--warmup", type=int, default=2, help="discarded steps per side and shape")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    missing = missing_dependency()
    if missing:
        print(f"bench_vs_trl needs trl, transformers and datasets ({missing}): pip install -e '.[bench]'")
        return 0
    import transformers
    import trl

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # transformers 5.23 deprecates gradient_checkpointing names that TRL 1.16 still calls: not ours to fix
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
          f"threads {torch.get_num_threads()}, device cpu; medians of {args.repeats} interleaved steps "
          f"after {args.warmup} warm-up; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_model(tmp / "tiny-llama", "llama", layers=LAYERS, width=WIDTH, heads=HEADS,
                                     vocab_size=64, positions=64)
        for prompts, group, new in SHAPES:
            r = run_shape(model_dir, prompts, group, new, args.repeats, args.warmup, tmp)
            if prompts == SHAPES[0][0]:
                p = r["params"]
                print(f"models: tiny Llama {p['hf']:,} parameters (TRL sees {p['trl']:,}); "
                      f"char GPT {p['char']:,} parameters")
            med = {k: statistics.median(v) for k, v in r["times"].items()}
            mlen = {k: statistics.mean(v) for k, v in r["lengths"].items()}
            print(f"RL step {prompts}x{group}x{new}: TRL {med['trl'] * 1e3:7.1f} ms | ours hf-llama "
                  f"{med['hf'] * 1e3:7.1f} ms ({med['trl'] / med['hf']:.2f}x) | ours char-gpt "
                  f"{med['char'] * 1e3:7.1f} ms ({med['trl'] / med['char']:.2f}x)   [ratio = TRL / ours]")
            print(f"  mean completion length (tokens incl. <eos>): TRL {mlen['trl']:.2f}, ours hf {mlen['hf']:.2f}, "
                  f"ours char {mlen['char']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
