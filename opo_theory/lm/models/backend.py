"""Which policy model a run trains, behind one small interface the trainer, rollouts and SFT use.

A policy is an ``nn.Module`` with a ``vocab`` (opo_theory.lm.models.tokenizer.Vocabulary) and four calls:
``begin(prompts, capacity) -> (last logits [B, V], state)`` prefills left-padded prompts;
``advance(tokens, state) -> logits [B, t, V]`` appends tokens through the KV cache (differentiable);
``repeat(state, r)`` repeats every row of the state r times, ``select(state, rows)`` keeps the given
rows (decoding drops finished ones); ``full_logits(prompts, tokens)`` is one
forward over both without a cache; ``compile_forward()`` applies torch.compile in place. Two backends implement it: the built-in char GPT
(opo_theory.lm.models.char_gpt) and a local transformers causal LM (opo_theory.lm.models.hf, model spec 'hf:<dir>'; a named
pretrained model such as 'smollm2-135m' or a local 'gguf:<file>' is converted once into such a directory by
opo_theory.lm.models.pretrained).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor, nn

from opo_theory.lm.models.pretrained import (
    NAMED,
    gguf_fingerprint,
    gguf_path,
    is_pretrained_spec,
    pretrained_dir,
)
from opo_theory.lm.models.tokenizer import Vocabulary

CHAR_GPT = "char-gpt"
HF_PREFIX = "hf:"


class CausalPolicy(Protocol):
    vocab: Vocabulary

    def begin(self, prompts: Tensor, capacity: int) -> tuple[Tensor, Any]: ...
    def advance(self, tokens: Tensor, state: Any) -> Tensor: ...
    def repeat(self, state: Any, repeats: int) -> Any: ...
    def select(self, state: Any, rows: Tensor) -> Any: ...
    def full_logits(self, prompts: Tensor, tokens: Tensor) -> Tensor: ...
    def compile_forward(self) -> None: ...


MODEL_SPECS = f"{CHAR_GPT}, {', '.join(NAMED)}, hf:<dir written by save_pretrained> or gguf:<local .gguf file>"


def check_model_spec(spec: str) -> str:
    """Require ``spec`` to be 'char-gpt', a named pretrained model, 'gguf:<file>' or 'hf:<dir>' with <dir>
    holding a save_pretrained config.json."""
    if spec == CHAR_GPT:
        return spec
    if is_pretrained_spec(spec):
        gguf_path(spec)
        return spec
    if not isinstance(spec, str) or not spec.startswith(HF_PREFIX) or not spec[len(HF_PREFIX):]:
        raise ValueError(f"unknown model {spec!r}; allowed: {MODEL_SPECS}")
    path = Path(spec[len(HF_PREFIX):])
    if not (path / "config.json").is_file():
        raise ValueError(f"model {spec!r}: {path} holds no config.json (expected a local directory written by "
                         "save_pretrained; nothing is downloaded)")
    return spec


def hf_dir(spec: str) -> Path | None:
    """The local transformers directory of an 'hf:<dir>', named or 'gguf:' spec (converted on first use), None
    for the char GPT."""
    if is_pretrained_spec(spec):
        return pretrained_dir(spec)
    return Path(spec[len(HF_PREFIX):]) if spec.startswith(HF_PREFIX) else None


def model_fingerprint(spec: str) -> str:
    """What identifies the initial weights: the spec itself for the char GPT (its weights come from the
    seed); for a named or 'gguf:' model the GGUF file's hash; for 'hf:<dir>' a hash of the config and
    tokenizer files plus every weight file's name and size."""
    if is_pretrained_spec(spec):
        return gguf_fingerprint(spec)
    path = hf_dir(spec)
    if path is None:
        return spec
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        h.update(f.name.encode())
        if f.suffix == ".json" or f.name.startswith("tokenizer"):
            h.update(f.read_bytes())
        else:
            h.update(str(f.stat().st_size).encode())
    return f"hf:{h.hexdigest()[:16]}"


def use_threads(threads: int) -> None:
    """torch.set_num_threads(threads) for this process's CPU work; 0 leaves torch's own default."""
    if threads:
        import torch
        torch.set_num_threads(threads)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: matrices decay, vectors (biases, norms) do not; empty groups are left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
