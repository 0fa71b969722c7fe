"""SFT warm-up: teacher-forced next-token loss on answer tokens, until a target accuracy; cached, and resumable
from a partial checkpoint (``sft-<key>.partial`` beside the cache entry) written at every accuracy check."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from opo_theory.io import cache_dir, remove_stale_temporaries
from opo_theory.lm.models.backend import hf_dir
from opo_theory.lm.models.char_gpt import GPT, GPTConfig
from opo_theory.lm.models.sampling import generate, response_logits
from opo_theory.lm.models.tokenizer import CHAR_VOCAB, Vocabulary
from opo_theory.lm.progress import Interrupted, note
from opo_theory.lm.tasks.arithmetic import Problem, problems, reward
from opo_theory.lm.tasks.dataset import NONE, chat_text, dataset_pools
from opo_theory.lm.training.checkpoint import load_state, load_weights, save_state
from opo_theory.lm.training.config import TrainConfig


def model_config(cfg: TrainConfig, prompt_width: int) -> GPTConfig:
    return GPTConfig(CHAR_VOCAB.size, cfg.n_layer, cfg.n_head, cfg.n_embd, prompt_width + cfg.max_new + 1)


def prompt_width(vocab: Vocabulary, *pools: list[Problem]) -> int:
    """Longest prompt of ``pools`` in tokens of ``vocab``."""
    return max(len(vocab.encode_prompt(p.prompt)) for pool in pools for p in pool)


def sft_batch(pool: list[Problem], idx: torch.Tensor, width: int, vocab: Vocabulary = CHAR_VOCAB):
    """Prompts [B, W], answers+<eos> [B, A] (<pad> after), targets [B, A] with -100 on the padding."""
    items = [pool[i] for i in idx.tolist()]
    prompts = vocab.prompts([p.prompt for p in items], width)
    answers = [vocab.encode_answer(p.answer) + [vocab.eos_id] for p in items]
    targets = torch.full((len(items), max(map(len, answers))), -100, dtype=torch.long)
    for i, a in enumerate(answers):
        targets[i, :len(a)] = torch.tensor(a)
    return prompts, targets.masked_fill(targets < 0, vocab.pad_id), targets


def sft_loss(model, prompts: torch.Tensor, answers: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over answer tokens (-log pi(y_t)), teacher-forced."""
    logits = response_logits(model, prompts, answers)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


@torch.no_grad()
def accuracy(model, pool: list[Problem], width: int, max_new: int, batch: int = 256,
             verifier: str = "strict") -> float:
    """Greedy accuracy on ``pool``, judged by ``verifier`` (opo_theory.lm.tasks.arithmetic.VERIFIERS); NaN (null in
    metrics.jsonl) for an empty pool (a user's dataset has no OOD set)."""
    if not pool:
        return math.nan
    device = next(model.parameters()).device
    hits = 0
    for i in range(0, len(pool), batch):
        items = pool[i:i + batch]
        prompts = model.vocab.prompts([p.prompt for p in items], width).to(device)
        out = generate(model, prompts, max_new, temperature=0.0)
        hits += sum(reward(model.vocab.decode(o), p.answer, verifier=verifier)[1]
                    for o, p in zip(out.tolist(), items, strict=True))
    return hits / len(pool)


def task_pools(cfg: TrainConfig) -> dict[str, list[Problem]]:
    """Train pool and validation sets: fixed by cfg.sft_seed so every run sees the same data; from cfg.dataset
    where one is set (opo_theory.lm.tasks.dataset), else the built-in arithmetic levels."""
    if cfg.dataset != NONE:
        return dataset_pools(cfg)
    return {"train": problems(cfg.train_level, "train", cfg.pool_size, cfg.sft_seed),
            "val": problems(cfg.train_level, "val", cfg.val_size, cfg.sft_seed),
            "ood": problems(cfg.ood_level, "val", cfg.val_size, cfg.sft_seed + 12345)}


def sft_key(cfg: TrainConfig) -> str:
    """The name of ``cfg``'s SFT cache entry: TrainConfig.sft_key, a hash of every field the warm-up reads."""
    return cfg.sft_key()


def sft_learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up over 100 steps, then cosine decay to 0 at sft_max_steps."""
    return cfg.sft_lr * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / cfg.sft_max_steps))


def initial_policy(cfg: TrainConfig, pools) -> torch.nn.Module:
    """The policy before SFT: a char GPT initialised from sft_seed, or the local transformers model."""
    path = hf_dir(cfg.model)
    if path is not None:
        from opo_theory.lm.models.hf import load_hf_policy
        policy = load_hf_policy(path, cfg.prompt_format, chat_text(cfg))
        policy.check_context(prompt_width(policy.vocab, *pools.values()) + cfg.max_new)
        return policy
    if cfg.prompt_format != "raw":
        raise ValueError(f"prompt_format={cfg.prompt_format} needs a model with a chat template; the char GPT "
                         "reads raw prompts only")
    torch.manual_seed(cfg.sft_seed)          # the initial weights depend on sft_seed only
    return GPT(model_config(cfg, prompt_width(CHAR_VOCAB, *pools.values())))


def warm_start(cfg: TrainConfig, pools, quiet: bool = False) -> tuple[torch.nn.Module, dict]:
    """Load the cached SFT policy for this config, or train and cache it (atomically);
    ``sft_max_steps = 0`` starts RL from the initial policy."""
    model = initial_policy(cfg, pools)
    width = prompt_width(model.vocab, *pools.values())
    if cfg.sft_max_steps == 0:
        return model.to(cfg.device), {"sft_steps": 0, "sft_val_accuracy": None, "sft_key": None}
    path = cache_dir(cfg.sft_cache) / f"sft-{sft_key(cfg)}.pt"
    remove_stale_temporaries(path.parent, path.name, partial_path(path).name)    # killed while writing these
    if path.exists():
        info = load_cached_policy(path, model)
        note(f"sft: cached warm-up policy loaded from {path} ({info['sft_steps']} steps, val accuracy "
             f"{info['sft_val_accuracy']:.3f}); no SFT needed", quiet)
        return model.to(cfg.device), info
    note(f"sft: no cached warm-up policy for these settings; training up to {cfg.sft_max_steps} steps until val "
         f"accuracy >= {cfg.sft_target_accuracy:g} (checked every {cfg.sft_eval_every}), then caching it at {path}",
         quiet)
    model, info = sft_train(cfg, pools, model, width, quiet, partial_path(path))
    save_cached_policy(path, model, info)
    partial_path(path).unlink(missing_ok=True)          # the whole warm-up is cached: its partial is not needed
    reached = info["sft_val_accuracy"] >= cfg.sft_target_accuracy
    note(f"sft: {'reached' if reached else 'stopped at the step limit with'} val accuracy "
         f"{info['sft_val_accuracy']:.3f} ({'>=' if reached else '<'} target {cfg.sft_target_accuracy:g}) at step "
         f"{info['sft_steps']}/{cfg.sft_max_steps}; cached at {path}", quiet)
    return model, info


def load_cached_policy(path: Path, model) -> dict:
    """Load a cached policy's weights into ``model`` (safely, checksum verified; one line naming the file when
    it is refused or does not fit the model); returns the info stored with them."""
    state = load_state(path)
    if not isinstance(state.get("info"), dict) or "model" not in state:
        raise ValueError(f"{path} holds no cached policy (no weights and info): not an SFT cache entry")
    load_weights(model, state["model"], path)
    return state["info"]


def save_cached_policy(path: Path, model, info: dict) -> None:
    """Cache ``model``'s weights with ``info`` at ``path`` (atomically: a killed write leaves no cache entry)."""
    save_state(path, {"model": model.state_dict(), "info": info})


def sft_step(model, opt, pool, gen, width: int, cfg: TrainConfig) -> torch.Tensor:
    """One teacher-forced SFT update on a batch of cfg.sft_batch problems drawn from ``pool``; returns its loss."""
    idx = torch.randint(len(pool), (cfg.sft_batch,), generator=gen)
    loss = sft_loss(model, *(x.to(cfg.device) for x in sft_batch(pool, idx, width, model.vocab)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


HEARTBEAT_S = 15.0        # between two accuracy checks, a progress line at most this often


def partial_path(entry: Path) -> Path:
    """Where the unfinished warm-up of cache entry ``sft-<key>.pt`` keeps its partial checkpoint: sft-<key>.partial."""
    return entry.with_suffix(".partial")


class SFTState:
    """What an unfinished warm-up needs to continue bit for bit: weights, AdamW state, the batch generator and
    torch's global RNG, the step reached and the last val accuracy (the early-stopping test reads it)."""

    def __init__(self, cfg: TrainConfig, model) -> None:
        self.model = model.to(cfg.device)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0, fused=True)
        self.gen = torch.Generator().manual_seed(cfg.sft_seed)
        self.step, self.acc = 0, 0.0

    def save(self, path: Path) -> None:
        """Write the partial checkpoint atomically (a killed write leaves the previous one)."""
        save_state(path, {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "gen": self.gen.get_state(),
                          "torch_rng": torch.get_rng_state(), "step": self.step, "acc": self.acc})

    def load(self, path: Path) -> None:
        """Continue from the partial checkpoint at ``path`` (checksum verified; one line naming it if refused)."""
        state = load_state(path)
        missing = sorted({"model", "opt", "gen", "torch_rng", "step", "acc"} - set(state))
        if missing:
            raise ValueError(f"{path} is not a partial SFT checkpoint (it lacks {', '.join(missing)}); delete it "
                             "to start the warm-up over")
        load_weights(self.model, state["model"], path)
        load_weights(self.opt, state["opt"], path)
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.acc = state["step"], state["acc"]


def sft_train(cfg: TrainConfig, pools, model, width: int, quiet: bool,
              partial: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Teacher-forced SFT of ``model`` on the train pool until the target val accuracy or sft_max_steps; with
    ``partial``, continue from the checkpoint there and rewrite it at every accuracy check, so the finished
    policy is bitwise the uninterrupted one. Ctrl-C raises Interrupted naming the steps done."""
    run, saved_at = SFTState(cfg, model), None          # saved_at: the step the partial checkpoint on disk holds
    if partial is not None and partial.exists():
        run.load(partial)
        saved_at = run.step
        note(f"sft: resuming the interrupted warm-up at step {run.step}/{cfg.sft_max_steps} (val accuracy "
             f"{run.acc:.3f}) from {partial}", quiet)
    start, step, resumed_at = time.perf_counter(), run.step, run.step
    last_line = start
    try:
        for step in range(run.step + 1, cfg.sft_max_steps + 1):
            lr = sft_learning_rate(cfg, step)
            for group in run.opt.param_groups:
                group["lr"] = lr
            loss = sft_step(run.model, run.opt, pools["train"], run.gen, width, cfg)
            if step % cfg.sft_eval_every == 0:
                run.step, run.acc = step, accuracy(run.model, pools["val"], width, cfg.max_new, verifier=cfg.verifier)
                note(f"sft step {step}/{cfg.sft_max_steps}: loss {loss.item():.3f} val accuracy {run.acc:.3f} "
                     f"(target {cfg.sft_target_accuracy:g}), {time.perf_counter() - start:.0f} s elapsed"
                     + (f" since the resume at step {resumed_at}" if resumed_at else ""), quiet)
                if run.acc >= cfg.sft_target_accuracy:
                    break
                if partial is not None and step < cfg.sft_max_steps:
                    try:
                        run.save(partial)
                        saved_at = step
                    except OSError as exc:     # a full disk, or another process cleaning: the warm-up goes on
                        note(f"sft: the partial checkpoint {partial} was not written ({exc}); the warm-up goes on, "
                             "but an interruption before the next check loses the steps since the last one", quiet)
                last_line = time.perf_counter()
            elif time.perf_counter() - last_line >= HEARTBEAT_S:      # a long stretch between two checks
                last_line = time.perf_counter()
                check = min(cfg.sft_max_steps, (step // cfg.sft_eval_every + 1) * cfg.sft_eval_every)
                note(f"sft: step {step}/{cfg.sft_max_steps}, loss {loss.item():.3f}, {last_line - start:.0f} s "
                     f"elapsed (next accuracy check at step {check})", quiet)
    except KeyboardInterrupt:
        raise Interrupted(f"SFT warm-up step {max(step - 1, 0)}/{cfg.sft_max_steps}",
                          f"a rerun resumes the warm-up at step {saved_at} (its last accuracy check, saved in "
                          f"{partial})" if saved_at is not None else "no accuracy check was saved yet, so a rerun starts the "
                          "warm-up over") from None
    if step % cfg.sft_eval_every:          # the step limit fell between two checks: measure the final policy
        run.acc = accuracy(run.model, pools["val"], width, cfg.max_new, verifier=cfg.verifier)
    return run.model, {"sft_steps": step, "sft_val_accuracy": run.acc, "sft_key": sft_key(cfg)}
