"""A compact decoder-only transformer with a KV cache (pre-norm blocks, tied embeddings); it implements
the policy interface of `opo_theory.lm.models.backend` (begin / advance / repeat / full_logits)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from opo_theory.lm.models.tokenizer import CHAR_VOCAB, Vocabulary


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 96
    block_size: int = 48

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")


class KVCache:
    """Preallocated keys/values per layer: [B, H, capacity <= block_size, D]; ``length`` tokens are filled."""

    def __init__(self, cfg: GPTConfig, batch: int, device, dtype, capacity: int | None = None) -> None:
        capacity = cfg.block_size if capacity is None else min(capacity, cfg.block_size)
        shape = (batch, cfg.n_head, capacity, cfg.n_embd // cfg.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)]
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k[0].shape[2]

    def repeat_interleave(self, repeats: int) -> KVCache:
        """The cache of a batch in which every row is repeated ``repeats`` times (row i -> rows i*r..i*r+r-1)."""
        return self._rows(lambda x: x.repeat_interleave(repeats, 0))

    def select(self, rows: Tensor) -> KVCache:
        """The cache of the batch rows ``rows`` (long indices)."""
        return self._rows(lambda x: x.index_select(0, rows))

    def _rows(self, fn) -> KVCache:
        out = object.__new__(KVCache)
        out.k, out.v, out.length = [fn(k) for k in self.k], [fn(v) for v in self.v], self.length
        return out


def causal_mask(t: int, start: int, device) -> dict:
    """SDPA arguments for t queries at positions start..start+t-1 over keys 0..start+t-1 (causal)."""
    if start == 0:
        return {"is_causal": t > 1}
    if t == 1:
        return {}                     # one decoding step sees everything cached
    return {"attn_mask": torch.ones(t, start + t, dtype=torch.bool, device=device).tril(start)}


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start:start + t] = k
            cache.v[layer][:, :, start:start + t] = v
            k, v = cache.k[layer][:, :, :start + t], cache.v[layer][:, :, :start + t]
        else:
            start = 0
        y = F.scaled_dot_product_attention(q, k, v, **causal_mask(t, start, x.device))
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """logits = GPT(idx [B, T]); with a KVCache, positions continue from ``cache.length``."""

    def __init__(self, cfg: GPTConfig, vocab: Vocabulary = CHAR_VOCAB) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        t = idx.shape[1]
        start = 0 if cache is None else cache.length
        limit, what = (self.cfg.block_size, "block_size") if cache is None else (cache.capacity, "the cache capacity")
        if start + t > limit:
            raise ValueError(f"sequence length {start + t} exceeds {what} {limit}")
        x = self.tok(idx) + self.pos(torch.arange(start, start + t, device=idx.device))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += t
        return self.ln_f(x) @ self.tok.weight.T

    # ---- policy interface (opo_theory.lm.models.backend.CausalPolicy); padding is an ordinary token here
    def begin(self, prompts: Tensor, capacity: int) -> tuple[Tensor, KVCache]:
        """Last-position logits [B, V] of ``prompts`` and a cache with room for ``capacity`` positions."""
        cache = KVCache(self.cfg, prompts.shape[0], prompts.device, next(self.parameters()).dtype, capacity)
        return self(prompts, cache)[:, -1], cache

    def advance(self, tokens: Tensor, cache: KVCache) -> Tensor:
        """Logits [B, t, V] of ``tokens`` appended after the cached positions (the cache advances)."""
        return self(tokens, cache)

    @staticmethod
    def repeat(cache: KVCache, repeats: int) -> KVCache:
        return cache.repeat_interleave(repeats)

    @staticmethod
    def select(cache: KVCache, rows: Tensor) -> KVCache:
        return cache.select(rows)

    def full_logits(self, prompts: Tensor, tokens: Tensor) -> Tensor:
        """Logits [B, W + N, V] of prompts followed by ``tokens``, in one forward without a cache."""
        return self(torch.cat([prompts, tokens], 1))

    def compile_forward(self) -> None:
        """torch.compile the forward in place (dynamic shapes; parameter names unchanged)."""
        self.compile(dynamic=True)
