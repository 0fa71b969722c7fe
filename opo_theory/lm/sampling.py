"""Batched generation (KV cache or full recompute), temperature and top-p; response log-probs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from opo_theory.lm.model import GPT, KVCache
from opo_theory.lm.tokenizer import EOS, PAD


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
def generate(model: GPT, prompts: Tensor, max_new: int, temperature: float = 1.0, top_p: float = 1.0,
             generator: torch.Generator | None = None, use_cache: bool = True) -> Tensor:
    """[B, max_new] new tokens; after <eos> every position is <pad>."""
    b = prompts.shape[0]
    out = torch.full((b, max_new), PAD, dtype=torch.long, device=prompts.device)
    done = torch.zeros(b, dtype=torch.bool, device=prompts.device)
    cache = KVCache(model.cfg, b, prompts.device, next(model.parameters()).dtype) if use_cache else None
    logits = model(prompts, cache)[:, -1]
    seq = prompts
    for t in range(max_new):
        tok = sample_next(logits, temperature, top_p, generator)
        tok = torch.where(done, torch.full_like(tok, PAD), tok)
        out[:, t] = tok
        done |= tok == EOS
        if t == max_new - 1 or bool(done.all()):
            break
        if use_cache:
            logits = model(tok[:, None], cache)[:, -1]
        else:
            seq = torch.cat([seq, tok[:, None]], 1)
            logits = model(seq)[:, -1]
    return out


def response_mask(tokens: Tensor) -> Tensor:
    """[B, N] 1 for generated tokens up to and including the first <eos> (padding after it is 0)."""
    is_eos = tokens == EOS
    after = (is_eos.cumsum(-1) - is_eos.long()) > 0
    return ((tokens != PAD) & ~after).to(torch.float32)


def response_logprobs(model: GPT, prompts: Tensor, tokens: Tensor, with_entropy: bool = False):
    """Per-token log pi(response token) [B, N] (and entropy [B, N]) from one full forward pass."""
    seq = torch.cat([prompts, tokens], 1)
    logits = model(seq[:, :-1])[:, prompts.shape[1] - 1:]
    logp_all = F.log_softmax(logits.float(), -1)
    logp = logp_all.gather(-1, tokens[..., None]).squeeze(-1)
    if not with_entropy:
        return logp, None
    return logp, -(logp_all.exp() * logp_all).sum(-1)
