"""Benchmark the LM trainer: rollout tokens/s with and without the KV cache, training tokens/s,
and the RL step time at two reference shapes against the bare PyTorch cost of the same model calls.

Reference shapes (issue 5): 4-layer 128-wide char GPT, 8 prompts x 6 completions x 8 tokens and
16 x 6 x 32 tokens, one update per step; "lean" turns off the diagnostics that cost extra passes
(post-update trust-region forward, drive/reg split, exact-vs-surrogate gradient cosine). Usage: python benchmarks/bench_lm.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from timing import median_time

from opo_theory.lm.config import make_config
from opo_theory.lm.model import GPT, GPTConfig
from opo_theory.lm.sampling import generate, response_logprobs
from opo_theory.lm.tokenizer import VOCAB, encode, left_pad
from opo_theory.lm.trainer import Trainer

MODEL = ["n_layer=4", "n_embd=128", "n_head=4"]


def rollout_throughput(repeats: int) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(VOCAB), 4, 4, 128, 80)).eval()
    prompts = left_pad([encode("123+456=")] * 48)
    for cache in (True, False):
        sec = median_time(lambda c=cache: generate(model, prompts, 64, temperature=1.0, top_p=1.0,
                                             generator=torch.Generator().manual_seed(0), use_cache=c), repeats)
        print(f"rollout 48 x 64 new tokens, kv_cache={cache}: {48 * 64 / sec:,.0f} tokens/s ({sec * 1e3:.0f} ms)")


LEAN = ["trust_region_metrics=false", "grad_split=false", "approx_grad=false"]
# Quoted from issue 5 (not measured here): TRL 1.16 GRPOTrainer median step on a 2-core CPU, same shapes.
TRL_REFERENCE_S = {(8, 6, 8): 0.131, (16, 6, 32): 0.585}


def bare_step(trainer: Trainer, prompts: int, group: int, new: int):
    """The model calls a lean RL step makes, in bare PyTorch: sample, forward+backward, clip, AdamW."""
    model, opt, cfg = trainer.model, trainer.opt, trainer.cfg
    p = left_pad([encode("123+456=")] * prompts, trainer.width)
    gen = torch.Generator().manual_seed(0)

    def step():
        tokens = generate(model, p, new, 1.0, 1.0, gen, repeats=group)
        logp, _ = response_logprobs(model, p, tokens, with_entropy=True, repeats=group)
        opt.zero_grad(set_to_none=True)
        (-logp.mean()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    return step


def rl_steps(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for prompts, group, new in TRL_REFERENCE_S:
            trl = TRL_REFERENCE_S[prompts, group, new]
            for objective in ("grpo", "opo"):
                for label, extra in (("full diagnostics", []), ("lean", LEAN)):
                    settings = MODEL + [f"prompts_per_step={prompts}", f"group_size={group}", f"max_new={new}",
                                        "ppo_epochs=1", "minibatches=1", "sft_max_steps=1",
                                        "sft_eval_every=1", f"sft_cache={tmp}/sft", "val_every=1000000",
                                        "train_level=3", "temperature=1.0"] + extra
                    cfg = make_config(objective, "cpu-tiny", 0, settings, steps=1)
                    trainer = Trainer(cfg, f"{tmp}/{objective}-{prompts}-{new}-{len(extra)}", quiet=True)
                    ours = median_time(trainer.rl_step, repeats)
                    line = (f"RL step {prompts}x{group}x{new} {objective:4s} {label:16s}: {ours * 1e3:6.1f} ms, "
                            f"{trl / ours:.2f}x faster than TRL's {trl * 1e3:.0f} ms (quoted)")
                    if extra:
                        bare = median_time(bare_step(trainer, prompts, group, new), repeats)
                        line += f"; bare model calls {bare * 1e3:6.1f} ms, ratio {ours / bare:.2f}"
                    print(line)


def training_throughput(repeats: int) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(len(VOCAB), 4, 4, 128, 48))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(2, len(VOCAB), (128, 24))

    def step():
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    sec = median_time(step, repeats)
    print(f"training (forward+backward+AdamW) 128 x 24 tokens: {128 * 24 / sec:,.0f} tokens/s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device cpu")
    rollout_throughput(args.repeats)
    training_throughput(args.repeats)
    rl_steps(args.repeats)


if __name__ == "__main__":
    main()
