"""The transformers backend: any local ``AutoModelForCausalLM`` + tokenizer saved with save_pretrained,
wrapped in the policy interface of opo_theory.lm.backend. Nothing is downloaded (local files only).

Left-padded prompts are masked out of attention and positions count real tokens only, so a prompt's
logits do not depend on how much padding its batch needed; response tokens are never masked (what
follows <eos> is excluded by the response mask, and causality keeps it from earlier positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from opo_theory.lm.tokenizer import Vocabulary


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError("an 'hf:' model needs the optional transformers dependency: "
                         "pip install -e '.[hf]'") from None
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return transformers


def hf_vocabulary(tokenizer, name: str) -> Vocabulary:
    """The Vocabulary of a transformers tokenizer: prompts with its special tokens, answers without;
    <pad> falls back to <eos> when the tokenizer has none."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer of {name} has no eos token; the task needs one to end answers")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def decode(ids) -> str:
        ids = [int(i) for i in ids]
        ids = ids[:ids.index(eos)] if eos in ids else ids
        return tokenizer.decode([i for i in ids if i != pad], skip_special_tokens=True)

    return Vocabulary(f"hf:{name}", len(tokenizer), pad, eos,
                      lambda text: tokenizer(text).input_ids,
                      lambda text: tokenizer(text, add_special_tokens=False).input_ids, decode)


@dataclass
class HFState:
    """A transformers KV cache plus the attention mask of the positions it holds."""

    cache: object
    mask: Tensor


class HFPolicy(nn.Module):
    """A transformers causal LM (``self.lm``) behind the policy interface."""

    def __init__(self, lm: nn.Module, vocab: Vocabulary) -> None:
        super().__init__()
        self.lm, self.vocab = lm, vocab

    def check_context(self, length: int) -> None:
        """ValueError when prompts plus responses (``length`` tokens) exceed the model's positions."""
        limit = getattr(self.lm.config, "max_position_embeddings", None) or getattr(self.lm.config, "n_positions", None)
        if limit is not None and length > limit:
            raise ValueError(f"prompt width + max_new = {length} tokens exceeds the model's {limit} positions")

    def _logits(self, ids: Tensor, mask: Tensor, positions: Tensor, cache=None, keep: int = 0) -> tuple[Tensor, object]:
        """Logits of the last ``keep`` positions (0 = all) and the updated cache."""
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                      use_cache=cache is not None, logits_to_keep=keep)
        return out.logits, out.past_key_values

    def _prompt_mask(self, prompts: Tensor) -> Tensor:
        return (prompts != self.vocab.pad_id).long()

    def begin(self, prompts: Tensor, capacity: int) -> tuple[Tensor, HFState]:
        mask = self._prompt_mask(prompts)
        logits, cache = self._logits(prompts, mask, (mask.cumsum(-1) - 1).clamp_min(0),
                                     _transformers().DynamicCache(), keep=1)
        return logits[:, -1], HFState(cache, mask)

    def advance(self, tokens: Tensor, state: HFState) -> Tensor:
        t = tokens.shape[1]
        positions = state.mask.sum(-1, keepdim=True) + torch.arange(t, device=tokens.device)
        state.mask = torch.cat([state.mask, state.mask.new_ones(tokens.shape[0], t)], 1)
        logits, state.cache = self._logits(tokens, state.mask, positions, state.cache)
        return logits

    @staticmethod
    def repeat(state: HFState, repeats: int) -> HFState:
        state.cache.batch_repeat_interleave(repeats)
        return HFState(state.cache, state.mask.repeat_interleave(repeats, 0))

    @staticmethod
    def select(state: HFState, rows: Tensor) -> HFState:
        state.cache.batch_select_indices(rows)
        return HFState(state.cache, state.mask.index_select(0, rows))

    def compile_forward(self) -> None:
        """torch.compile the transformers model's forward in place (dynamic shapes; names unchanged)."""
        self.lm.compile(dynamic=True)

    def full_logits(self, prompts: Tensor, tokens: Tensor) -> Tensor:
        mask = torch.cat([self._prompt_mask(prompts), torch.ones_like(tokens)], 1)
        return self._logits(torch.cat([prompts, tokens], 1), mask, (mask.cumsum(-1) - 1).clamp_min(0))[0]


def load_hf_policy(path: Path) -> HFPolicy:
    """Model and tokenizer from the local directory ``path`` (float32 weights; local files only)."""
    tf = _transformers()
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
        lm = tf.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load a causal LM and tokenizer from {path}: {exc}") from None
    return HFPolicy(lm, hf_vocabulary(tokenizer, path.name))
