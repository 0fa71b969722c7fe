"""SFT warm-up: teacher-forced next-token loss on answer tokens, until a target accuracy; cached."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from opo_theory.io import write_bytes_atomic
from opo_theory.lm.config import TrainConfig
from opo_theory.lm.model import GPT, GPTConfig
from opo_theory.lm.sampling import generate
from opo_theory.lm.task import Problem, problems
from opo_theory.lm.tokenizer import EOS, VOCAB, decode, encode, left_pad


def model_config(cfg: TrainConfig, prompt_width: int) -> GPTConfig:
    return GPTConfig(len(VOCAB), cfg.n_layer, cfg.n_head, cfg.n_embd, prompt_width + cfg.max_new + 1)


def prompt_width(*pools: list[Problem]) -> int:
    return max(len(p.prompt) for pool in pools for p in pool)


def sft_batch(pool: list[Problem], idx: torch.Tensor, width: int):
    """Inputs [B, W+A], targets with -100 outside the answer+<eos> positions."""
    items = [pool[i] for i in idx.tolist()]
    prompts = left_pad([encode(p.prompt) for p in items], width)
    answers = [encode(p.answer) + [EOS] for p in items]
    a_len = max(map(len, answers))
    ans = torch.full((len(items), a_len), -100, dtype=torch.long)
    for i, a in enumerate(answers):
        ans[i, :len(a)] = torch.tensor(a)
    seq = torch.cat([prompts, ans.clamp_min(0)], 1)
    targets = torch.cat([torch.full_like(prompts, -100), ans], 1)
    return seq[:, :-1], targets[:, 1:]


def sft_loss(model: GPT, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over answer tokens (-log pi(y_t))."""
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


@torch.no_grad()
def accuracy(model: GPT, pool: list[Problem], width: int, max_new: int, batch: int = 256) -> float:
    """Greedy exact-match accuracy on ``pool``."""
    device = next(model.parameters()).device
    hits = 0
    for i in range(0, len(pool), batch):
        items = pool[i:i + batch]
        prompts = left_pad([encode(p.prompt) for p in items], width).to(device)
        out = generate(model, prompts, max_new, temperature=0.0)
        hits += sum(decode(o) == p.answer for o, p in zip(out.tolist(), items, strict=True))
    return hits / len(pool)


def task_pools(cfg: TrainConfig) -> dict[str, list[Problem]]:
    """Train pool and validation sets: fixed by cfg.sft_seed so every run sees the same data."""
    return {"train": problems(cfg.train_level, "train", cfg.pool_size, cfg.sft_seed),
            "val": problems(cfg.train_level, "val", cfg.val_size, cfg.sft_seed),
            "ood": problems(cfg.ood_level, "val", cfg.val_size, cfg.sft_seed + 12345)}


def sft_learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over 100 steps, then cosine decay to 0 at sft_max_steps."""
    return cfg.sft_lr * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / cfg.sft_max_steps))


def warm_start(cfg: TrainConfig, pools, quiet: bool = False) -> tuple[GPT, dict]:
    """Load the cached SFT policy for this config, or train and cache it (atomically)."""
    width = prompt_width(*pools.values())
    path = Path(cfg.sft_cache) / f"sft-{cfg.sft_key()}.pt"
    torch.manual_seed(cfg.sft_seed)          # the initial weights depend on sft_seed only
    model = GPT(model_config(cfg, width))
    if path.exists():
        blob = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        return model.to(cfg.device), blob["info"]
    model.to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0, fused=True)
    gen = torch.Generator().manual_seed(cfg.sft_seed)
    acc, step = 0.0, 0
    for step in range(1, cfg.sft_max_steps + 1):
        lr = sft_learning_rate(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(pools["train"]), (cfg.sft_batch,), generator=gen)
        inputs, targets = sft_batch(pools["train"], idx, width)
        loss = sft_loss(model, inputs.to(cfg.device), targets.to(cfg.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % cfg.sft_eval_every == 0:
            acc = accuracy(model, pools["val"], width, cfg.max_new)
            if not quiet:
                print(f"sft step {step}: loss {loss.item():.3f} val accuracy {acc:.3f}", file=sys.stderr, flush=True)
            if acc >= cfg.sft_target_accuracy:
                break
    info = {"sft_steps": step, "sft_val_accuracy": acc, "sft_key": cfg.sft_key()}
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "info": info}, buf)
    write_bytes_atomic(path, buf.getvalue())
    return model, info
