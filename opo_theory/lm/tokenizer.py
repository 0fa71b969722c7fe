"""Character tokenizer for the arithmetic task: <pad>=0, <eos>=1, then digits and operators."""

from __future__ import annotations

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


def left_pad(seqs: list[list[int]], width: int | None = None) -> torch.Tensor:
    """[B, width] long tensor, sequences right-aligned (prompts end where generation starts)."""
    width = max(map(len, seqs)) if width is None else width
    out = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
    return out
