"""Rollouts for the RL loop: draw prompts from the RL pool, sample G responses each, score them, refill
uninformative groups (DAPO's dynamic sampling), and pack them into the objectives' PolicyBatch."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from opo_theory.lm.models.sampling import generate, response_logprobs, response_mask
from opo_theory.lm.tasks.arithmetic import reward
from opo_theory.objectives import PolicyBatch, get
from opo_theory.objectives.shaping import informative_rows, overlong_penalty


@dataclass(frozen=True)
class Rollout:
    """Sampled groups: prompts [n, P] (one row per group), tokens [n G, N] (the G responses of prompt i are rows
    i G .. i G + G - 1), rewards [n G] (verifier reward, shaped and overlong-penalised as configured), correct
    [n G] (1.0 where the verifier accepts the answer, 0.0 else; None when not tracked). A part of a batch may
    hold no group (n = 0), keeping its response width for the padding of the whole."""

    prompts: Tensor
    tokens: Tensor
    rewards: Tensor
    correct: Tensor | None = None

    def __post_init__(self) -> None:
        n, rows = len(self.prompts), len(self.tokens)      # no group at all (n = rows = 0) is a valid part
        if (n == 0) != (rows == 0) or (n and rows % n) or len(self.rewards) != rows or (
                self.correct is not None and len(self.correct) != rows):
            raise ValueError(f"a rollout needs G responses per prompt: {n} prompts, {rows} responses, "
                             f"{len(self.rewards)} rewards, {None if self.correct is None else len(self.correct)} "
                             "correctness values")

    @property
    def group_size(self) -> int:
        return len(self.tokens) // len(self.prompts)

    @property
    def group(self) -> Tensor:
        """[n G] each response's group (prompt row)."""
        return torch.arange(len(self.tokens), device=self.tokens.device) // self.group_size

    @property
    def accuracy(self) -> float:
        """Share of responses the verifier accepts."""
        if self.correct is None:
            raise ValueError("this rollout does not track correctness (correct is None)")
        return float(self.correct.mean())

    def informative(self) -> Tensor:
        """[n] bool: the group's rewards are not all equal (objectives.shaping.informative_rows)."""
        return informative_rows(self.rewards.view(-1, self.group_size))


def autocast(cfg):
    """bf16 autocast for the model's forwards when cfg.bf16 (CUDA, or a CPU with bf16 matmuls)."""
    if cfg.bf16:
        return torch.autocast(cfg.device.split(":")[0], dtype=torch.bfloat16)
    return nullcontext()


def draw(cfg, size: int, gen: torch.Generator, cursor: int, n: int) -> tuple[list[int], int]:
    """``n`` indices into an RL pool of ``size`` problems and the new cursor: uniform with replacement from
    ``gen``, or (prompt_sampling=epochs) the next ``n`` from ``cursor`` on of a stream of permutations, one per
    pass, each seeded by (seed, pass) so a resume continues it."""
    if cfg.prompt_sampling == "replacement":
        return torch.randint(size, (n,), generator=gen).tolist(), cursor
    out = []
    while len(out) < n:
        epoch, pos = divmod(cursor, size)
        perm = torch.randperm(size, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        take = perm[pos:pos + n - len(out)].tolist()
        out += take
        cursor += len(take)
    return out, cursor


def used_columns(tokens, vocab) -> int:
    """Width of the response block once trailing columns that are padding in every row are dropped (>= 1)."""
    used = response_mask(tokens, vocab).any(0).nonzero()
    return int(used.max()) + 1 if len(used) else 1


def rollout(model, vocab, items, width: int, cfg, gen: torch.Generator) -> Rollout:
    """Prompts for ``items`` (one row per group) and G responses each, sampled from ``gen``; scored (plus
    DAPO's overlong penalty when overlong_buffer > 0)."""
    prompts = vocab.prompts([p.prompt for p in items], width).to(cfg.device)
    with autocast(cfg):
        tokens = generate(model, prompts, cfg.max_new, cfg.temperature, cfg.top_p, gen, repeats=cfg.group_size)
    tokens = tokens[:, :used_columns(tokens, vocab)]
    scored = [reward(vocab.decode(t), items[i // cfg.group_size].answer, cfg.shaping, cfg.verifier)
              for i, t in enumerate(tokens.tolist())]
    rewards = torch.tensor([s[0] for s in scored], dtype=torch.float32, device=cfg.device)
    correct = torch.tensor([s[1] for s in scored], dtype=torch.float32)
    if cfg.overlong_buffer:
        lengths = response_mask(tokens, vocab).sum(1)
        rewards = rewards + overlong_penalty(lengths, cfg.max_new, cfg.overlong_buffer).to(rewards)
    return Rollout(prompts, tokens, rewards, correct)


def groups_of(ro: Rollout, index: Tensor) -> Rollout:
    """The groups ``index`` (rows of ro.prompts) of a rollout, with all their responses."""
    g = ro.group_size
    take = lambda x: None if x is None else x.view(-1, g, *x.shape[1:])[index.to(x.device)].flatten(0, 1)
    return Rollout(ro.prompts[index], take(ro.tokens), take(ro.rewards), take(ro.correct))


def concat(parts: list[Rollout], pad_id: int) -> Rollout:
    """The rollouts' groups in order, responses right-padded with ``pad_id`` to the widest."""
    width = max(p.tokens.shape[1] for p in parts)
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad_id)
    correct = None if any(p.correct is None for p in parts) else torch.cat([p.correct for p in parts])
    return Rollout(torch.cat([p.prompts for p in parts]), torch.cat([pad(p.tokens) for p in parts]),
                   torch.cat([p.rewards for p in parts]), correct)


def collect(cfg, sample, pad_id: int) -> tuple[Rollout, Rollout, dict]:
    """The step's rollout batch from ``sample(n)`` (a Rollout of n prompts; None: prompts_per_step). With
    dynamic_sampling (DAPO), groups whose rewards are all equal are dropped and more prompts are sampled until
    prompts_per_step groups are informative or dynamic_sampling_rounds rounds are spent; the rest of the batch
    is then filled with uninformative groups of the last round. Returns (the batch to train on, the first
    round, sampling metrics): the logged reward and accuracy are the first round's, on uniformly drawn prompts."""
    first = sample()
    if not cfg.dynamic_sampling:
        return first, first, {}
    ro, rounds = first, 1
    parts, n_kept = [], 0
    while True:
        informative = ro.informative()
        keep = informative.nonzero().flatten()[:cfg.prompts_per_step - n_kept]
        parts.append(groups_of(ro, keep))
        n_kept += len(keep)
        if n_kept == cfg.prompts_per_step or rounds == cfg.dynamic_sampling_rounds:
            spare = (~informative).nonzero().flatten()[:cfg.prompts_per_step - n_kept]
            parts.append(groups_of(ro, spare))
            break
        ro = sample(cfg.prompts_per_step)
        rounds += 1
    batch = concat(parts, pad_id)
    extra = {"sampling/rounds": float(rounds), "sampling/informative_share": n_kept / cfg.prompts_per_step,
             "sampling/batch_reward_mean": float(batch.rewards.mean())}
    return batch, first, extra


def rollout_batch(model, prompts, tokens, logp_old, rewards, cfg, ref_model=None, with_entropy=True):
    """PolicyBatch for the rollouts, ``cfg.group_size`` per prompt (pairs: best vs worst response of each
    informative group); ``logp_old=None`` means the model is the anchor: pi_old = sg(pi_theta)."""
    logp, ent = response_logprobs(model, prompts, tokens, with_entropy, repeats=cfg.group_size,
                                  temperature=cfg.temperature)
    logp_old = logp.detach() if logp_old is None else logp_old
    mask = response_mask(tokens, model.vocab).to(logp.device)
    g = cfg.group_size
    groups = torch.arange(len(tokens), device=logp.device) // g
    extra = {}
    if get(cfg.objective).pairwise:
        r = rewards.view(-1, g)
        base = torch.arange(r.shape[0], device=logp.device) * g
        keep = informative_rows(r)
        extra = {"chosen": (base + r.argmax(1))[keep], "rejected": (base + r.argmin(1))[keep]}
        if not keep.any():
            return None
    if ref_model is not None:
        with torch.no_grad():
            extra["logp_ref"] = response_logprobs(ref_model, prompts, tokens, repeats=cfg.group_size,
                                                  temperature=cfg.temperature)[0]
    groups = groups - groups.min()
    return PolicyBatch(logp=logp, logp_old=logp_old, mask=mask, group=groups, rewards=rewards,
                       entropy=None if ent is None else ent.detach(), **extra)
