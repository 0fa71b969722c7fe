"""Batched generation (KV cache or full recompute), temperature and top-p; response log-probs.

Everything here talks to the model through the policy interface of `opo_theory.lm.models.backend`
(begin / advance / repeat / full_logits, and ``vocab`` for the <pad> and <eos> ids), so the char GPT
and a transformers causal LM share one implementation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sample_next(logits: Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> Tensor:
    """Next token [B] from last-position logits [B, V]: greedy at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = F.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p          # smallest set with mass >= top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model, prompts: Tensor, max_new: int, temperature: float = 1.0, top_p: float = 1.0,
             generator: torch.Generator | None = None, use_cache: bool = True, repeats: int = 1) -> Tensor:
    """[B * repeats, max_new] new tokens, ``repeats`` samples per prompt (row i -> rows i*r..i*r+r-1);
    after <eos> every position is <pad>. With the cache, each distinct prompt is prefilled once and rows
    that have finished are dropped from the decoding batch once a quarter of it has finished. Every step
    samples all rows from one [B * repeats, V] tensor (finished rows' samples are discarded), so the
    random stream, and hence the samples, do not depend on when rows are dropped."""
    if repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats}")
    pad, eos = model.vocab.pad_id, model.vocab.eos_id
    b = prompts.shape[0] * repeats
    out = torch.full((b, max_new), pad, dtype=torch.long, device=prompts.device)
    done = torch.zeros(b, dtype=torch.bool, device=prompts.device)
    if use_cache:
        logits, state = model.begin(prompts, prompts.shape[1] + max_new)
        logits, state = logits.repeat_interleave(repeats, 0), model.repeat(state, repeats)
        active = torch.arange(b, device=prompts.device)       # rows of the batch that ``state`` holds
    else:
        prompts = prompts.repeat_interleave(repeats, 0)
        logits = model.full_logits(prompts, out[:, :0])[:, -1]
    for t in range(max_new):
        tok = sample_next(logits, temperature, top_p, generator)
        tok = torch.where(done, torch.full_like(tok, pad), tok)
        out[:, t] = tok
        done |= tok == eos
        if t == max_new - 1 or bool(done.all()):
            break
        if use_cache:
            running = ~done.index_select(0, active)
            if 4 * int(running.sum()) <= 3 * len(active):       # a quarter or more finished: drop them
                keep = running.nonzero().squeeze(1)
                active, state = active.index_select(0, keep), model.select(state, keep)
            logits[active] = model.advance(tok.index_select(0, active)[:, None], state)[:, -1].to(logits.dtype)
        else:
            logits = model.full_logits(prompts, out[:, :t + 1])[:, -1]
    return out


def response_mask(tokens: Tensor, vocab) -> Tensor:
    """[B, N] 1 for generated tokens up to and including the first <eos>; 0 after it and for <pad>
    (when <pad> is a token of its own; a vocabulary whose <pad> is <eos> counts that first <eos>)."""
    is_eos = tokens == vocab.eos_id
    keep = (is_eos.cumsum(-1) - is_eos.long()) == 0
    if vocab.pad_id != vocab.eos_id:
        keep &= tokens != vocab.pad_id
    return keep.to(torch.float32)


def response_logits(model, prompts: Tensor, tokens: Tensor, repeats: int = 1) -> Tensor:
    """[P * repeats, N, V] logits predicting each response token, ``repeats`` responses per prompt [P, W].

    Each distinct prompt goes through the model once; its keys/values (differentiable) are shared by
    its ``repeats`` responses, which attend to them through the KV cache.
    """
    if repeats == 1:
        return model.full_logits(prompts, tokens[:, :-1])[:, prompts.shape[1] - 1:]
    first, state = model.begin(prompts, prompts.shape[1] + tokens.shape[1] - 1)
    first = first[:, None].repeat_interleave(repeats, 0)
    if tokens.shape[1] == 1:
        return first
    rest = model.advance(tokens[:, :-1], model.repeat(state, repeats))
    return torch.cat([first, rest], 1)


def tempered_log_softmax(logits: Tensor, temperature: float) -> Tensor:
    """log softmax(logits / T) in float32: the log-policy tokens are sampled from at temperature T (T = 0 and
    T = 1: the untempered policy)."""
    logits = logits.float()
    return F.log_softmax(logits if temperature in (0.0, 1.0) else logits / temperature, -1)


def response_logprobs(model, prompts: Tensor, tokens: Tensor, with_entropy: bool = False,
                      repeats: int = 1, temperature: float = 1.0):
    """Per-token log pi_T(response token) [B, N] (and entropy [B, N]) of the policy tempered at ``temperature``,
    pi_T = softmax(logits / T), the distribution the tokens were sampled from (as TRL does; T = 0, greedy, has
    no density and uses T = 1); prompts [B / repeats, W]."""
    if prompts.shape[0] * repeats != tokens.shape[0]:
        raise ValueError(f"{prompts.shape[0]} prompts x {repeats} repeats != {tokens.shape[0]} responses")
    logp_all = tempered_log_softmax(response_logits(model, prompts, tokens, repeats), temperature)
    logp = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
    if not with_entropy:
        return logp, None
    return logp, -(logp_all.exp() * logp_all).sum(-1)
