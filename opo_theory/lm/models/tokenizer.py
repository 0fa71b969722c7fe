"""Character tokenizer for the arithmetic task: <pad>=0, <eos>=1, then digits and operators; and the
Vocabulary record through which the trainer sees any tokenizer (this one or a transformers one)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

PAD, EOS = 0, 1
CHARS = "0123456789+-*()= "
VOCAB = ["<pad>", "<eos>", *CHARS]
_INDEX = {c: i + 2 for i, c in enumerate(CHARS)}


def encode(text: str) -> list[int]:
    """Token ids of ``text`` (ValueError naming the first character outside the vocabulary)."""
    try:
        return [_INDEX[c] for c in text]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in the vocabulary {CHARS!r}") from None


def decode(ids) -> str:
    """Text of ``ids`` up to the first <eos> (padding dropped)."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i != PAD:
            out.append(VOCAB[i])
    return "".join(out)


def left_pad(seqs: list[list[int]], width: int | None = None, pad: int = PAD) -> torch.Tensor:
    """[B, width] long tensor, sequences right-aligned (prompts end where generation starts)."""
    width = max(map(len, seqs)) if width is None else width
    out = torch.full((len(seqs), width), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
    return out


@dataclass(frozen=True)
class Vocabulary:
    """How text becomes token ids and back for one model: prompts may carry the model's special
    tokens (e.g. BOS), answers never do; ``decode`` stops at the first <eos> and drops padding."""

    name: str
    size: int
    pad_id: int
    eos_id: int
    encode_prompt: Callable[[str], list[int]]
    encode_answer: Callable[[str], list[int]]
    decode: Callable[[Sequence[int]], str]

    def prompts(self, texts: list[str], width: int | None = None) -> torch.Tensor:
        """[B, width] left-padded prompt ids."""
        return left_pad([self.encode_prompt(t) for t in texts], width, self.pad_id)


CHAR_VOCAB = Vocabulary("char", len(VOCAB), PAD, EOS, encode, encode, decode)
