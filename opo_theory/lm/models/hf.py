"""The transformers backend: any local ``AutoModelForCausalLM`` + tokenizer saved with save_pretrained,
wrapped in the policy interface of opo_theory.lm.models.backend. Nothing is downloaded (local files only).

Left padding is masked out of attention by position (every column before a prompt's first token), not by
token id: a tokenizer whose <pad> is its <eos> (SmolLM2's <|im_end|>) has that token inside chat prompts as a
turn separator, and masking by id would hide it. Positions count real tokens only, so a prompt's logits do
not depend on how much padding its batch needed; response tokens are never masked (what follows <eos> is
excluded by the response mask, and causality keeps it from earlier positions). Prompts are the task's raw
text or (prompt_format=chat) one user turn of the tokenizer's chat template (opo_theory.lm.tasks.arithmetic.question).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from opo_theory.lm.models.hf_check import check_hf_dir, transformers_module
from opo_theory.lm.models.tokenizer import Vocabulary
from opo_theory.lm.tasks.arithmetic import PROMPT_FORMATS, question
from opo_theory.validation import require_choice


def prompt_encoder(tokenizer, name: str, prompt_format: str, ask: Callable[[str], str] = question):
    """text -> prompt ids: the raw task text with the tokenizer's special tokens, or (chat) the chat template's
    user turn saying ``ask(text)`` (the task's question; a user's own prompt as written), followed by the
    assistant turn's opening."""
    require_choice("prompt_format", prompt_format, PROMPT_FORMATS)
    if prompt_format == "raw":
        return lambda text: tokenizer(text).input_ids
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"prompt_format=chat needs a tokenizer with a chat template; {name} has none "
                         "(use prompt_format=raw)")

    def encode(text: str) -> list[int]:
        chat = tokenizer.apply_chat_template([{"role": "user", "content": ask(text)}], tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(chat, add_special_tokens=False).input_ids
    return encode


def hf_vocabulary(tokenizer, name: str, prompt_format: str = "raw", ask: Callable[[str], str] = question) -> Vocabulary:
    """The Vocabulary of a transformers tokenizer: prompts in ``prompt_format`` (chat: the user turn says
    ``ask(text)``) with its special tokens, answers without; <pad> falls back to <eos> when the tokenizer has none."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer of {name} has no eos token; the task needs one to end answers")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos

    def decode(ids) -> str:
        ids = [int(i) for i in ids]
        ids = ids[:ids.index(eos)] if eos in ids else ids
        return tokenizer.decode([i for i in ids if i != pad], skip_special_tokens=True)

    return Vocabulary(f"hf:{name}", len(tokenizer), pad, eos, prompt_encoder(tokenizer, name, prompt_format, ask),
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
        """1 from each row's first non-<pad> column on (left padding is the leading run of <pad>)."""
        return (prompts != self.vocab.pad_id).long().cummax(-1).values

    def begin(self, prompts: Tensor, capacity: int) -> tuple[Tensor, HFState]:
        mask = self._prompt_mask(prompts)
        logits, cache = self._logits(prompts, mask, (mask.cumsum(-1) - 1).clamp_min(0),
                                     transformers_module().DynamicCache(), keep=1)
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


def load_hf_policy(path: Path, prompt_format: str = "raw", ask: Callable[[str], str] = question) -> HFPolicy:
    """Model and tokenizer from the local directory ``path`` (float32 weights; local files only), prompts in
    ``prompt_format`` (chat: the user turn says ``ask(text)``)."""
    check_hf_dir(path)        # one line naming the file for a broken directory (opo_theory.lm.models.hf_check)
    tf = transformers_module()
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(path, local_files_only=True)
        lm = tf.AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load a causal LM and tokenizer from {path}: {exc}") from None
    return HFPolicy(lm, hf_vocabulary(tokenizer, path.name, prompt_format, ask))
