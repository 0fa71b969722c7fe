"""Benchmark the LM trainer: rollout tokens/s with and without the KV cache, training tokens/s,
and the RL step time at two reference shapes against the bare PyTorch cost of the same model calls.

Reference shapes: 4-layer 128-wide char GPT (and a random-weight Llama of the same depth/width when
transformers is installed), 8 prompts x 6 completions x 8 tokens and 16 x 6 x 32 tokens, one update per step
(the same shapes bench_vs_trl.py times against TRL's GRPOTrainer); "lean" turns off the diagnostics that cost extra passes
(post-update trust-region forward, drive/reg split, exact-vs-surrogate gradient cosine). Usage: python benchmarks/bench_lm.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from timing import median_time

from opo_theory.lm.models.char_gpt import GPT, GPTConfig
from opo_theory.lm.models.sampling import generate, response_logprobs
from opo_theory.lm.models.tokenizer import VOCAB, encode, left_pad
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.trainer import Trainer, start_run

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
SHAPES = ((8, 6, 8), (16, 6, 32))       # prompts x completions x max new tokens (bench_vs_trl.py: same shapes vs TRL)


def bare_step(trainer: Trainer, prompts: int, group: int, new: int):
    """The model calls a lean RL step makes, in bare PyTorch: sample, forward+backward, clip, AdamW."""
    model, opt, cfg = trainer.model, trainer.opt, trainer.cfg
    p = trainer.vocab.prompts(["123+456="] * prompts, trainer.width)
    gen = torch.Generator().manual_seed(0)

    def step():
        tokens = generate(model, p, new, 1.0, 1.0, gen, repeats=group)
        logp, _ = response_logprobs(model, p, tokens, with_entropy=True, repeats=group)
        opt.zero_grad(set_to_none=True)
        (-logp.mean()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    return step


def models(tmp: str) -> dict[str, str]:
    """The char GPT and, when transformers is installed, a random-weight Llama of the same depth and width."""
    out = {"char-gpt": "char-gpt"}
    try:
        from opo_theory.lm.models.tiny_hf import build_tiny_model
        out["hf-llama"] = f"hf:{build_tiny_model(f'{tmp}/llama', 'llama', layers=4, width=128, heads=4, positions=64)}"
    except ValueError as exc:          # transformers missing: the hf line is skipped
        print(f"(no hf line: {exc})")
    return out


def rl_steps(repeats: int) -> None:
    """Median RL step per model, objective and diagnostics level; generated tokens/s puts models whose
    completions differ in length on one scale; lean steps also against their bare model calls."""
    with tempfile.TemporaryDirectory() as tmp:
        for label_model, model in models(tmp).items():
            for prompts, group, new in SHAPES:
                for objective in ("grpo", "opo"):
                    for label, extra in (("full diagnostics", []), ("lean", LEAN)):
                        settings = MODEL + [f"prompts_per_step={prompts}", f"group_size={group}", f"max_new={new}",
                                            "ppo_epochs=1", "minibatches=1", "sft_max_steps=0", f"sft_cache={tmp}/sft",
                                            "val_every=1000000", "train_level=3", "temperature=1.0"] + extra
                        cfg = make_config(objective, "cpu-tiny", 0, settings, steps=1, model=model)
                        trainer = start_run(cfg, f"{tmp}/{label_model}-{objective}-{prompts}-{new}-{len(extra)}", quiet=True)
                        lengths = []
                        ours = median_time(lambda t=trainer, n=lengths: n.append(t.rl_step()["completions/mean_length"]),
                                           repeats)
                        mean_len = sum(lengths) / len(lengths)
                        line = (f"RL step {label_model:8s} {prompts}x{group}x{new} {objective:4s} {label:16s}: "
                                f"{ours * 1e3:6.1f} ms, mean length {mean_len:5.2f}, "
                                f"{prompts * group * mean_len / ours:7,.0f} generated tok/s")
                        if extra:
                            bare = median_time(bare_step(trainer, prompts, group, new), repeats)
                            line += f"; bare model calls {bare * 1e3:6.1f} ms, ratio {ours / bare:.2f}"
                        print(line, flush=True)


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
