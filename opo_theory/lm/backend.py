"""Which policy model a run trains: the built-in char GPT or a local `transformers` causal LM."""

from __future__ import annotations

from pathlib import Path

CHAR_GPT = "char-gpt"
HF_PREFIX = "hf:"


def check_model_spec(spec: str) -> str:
    """Require ``spec`` to be 'char-gpt' or 'hf:<dir>' with <dir> holding a save_pretrained config.json."""
    if spec == CHAR_GPT:
        return spec
    if not isinstance(spec, str) or not spec.startswith(HF_PREFIX) or not spec[len(HF_PREFIX):]:
        raise ValueError(f"unknown model {spec!r}; allowed: {CHAR_GPT!r} or 'hf:<local directory written "
                         "by save_pretrained>'")
    path = Path(spec[len(HF_PREFIX):])
    if not (path / "config.json").is_file():
        raise ValueError(f"model {spec!r}: {path} holds no config.json (expected a local directory written by "
                         "save_pretrained; nothing is downloaded)")
    return spec
