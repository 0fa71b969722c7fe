"""Build a small random-weight transformers causal LM and a BPE tokenizer trained on the arithmetic
task, saved with save_pretrained: a local 'hf:<dir>' model for tests, benchmarks and trying the
backend without downloading anything.

    python -m opo_theory.lm.models.tiny_hf OUT_DIR [--arch llama|gpt2] [--layers 2] [--width 64] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from opo_theory.lm.models.tokenizer import CHARS
from opo_theory.lm.tasks.arithmetic import problems

ARCHS = ("llama", "gpt2")
SPECIALS = ("<pad>", "<eos>")
CORPUS_LEVELS = (1, 2, 3, 4, 5)     # the merges were learned on these; later levels use the same characters


def task_corpus(n_per_level: int = 2000, seed: int = 0) -> list[str]:
    """'prompt' + 'answer' strings of every level (level 1 has only ~80 distinct problems, so 50 of
    it): what the tokenizer's merges are learned from."""
    return [p.prompt + p.answer for level in CORPUS_LEVELS
            for p in problems(level, "train", 50 if level == 1 else n_per_level, seed)]


def train_tokenizer(vocab_size: int = 64, seed: int = 0):
    """A BPE tokenizer over the task's characters (no unknown token, no pre-tokenizer, merges learned
    on the task corpus), with <pad> = 0 and <eos> = 1, wrapped as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=list(CHARS), show_progress=False)
    bpe.train_from_iterator(task_corpus(seed=seed), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token=SPECIALS[0], eos_token=SPECIALS[1])


def model_config(arch: str, vocab_size: int, layers: int, width: int, heads: int, positions: int,
                 pad_id: int, eos_id: int):
    """A Llama (RMSNorm, RoPE, SwiGLU with ~8/3 width) or GPT-2 (LayerNorm, learned positions, 4x GELU)
    config with tied embeddings."""
    from transformers import GPT2Config, LlamaConfig

    if arch == "llama":
        return LlamaConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=(8 * width) // 3,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=positions, pad_token_id=pad_id, eos_token_id=eos_id,
                           bos_token_id=None, tie_word_embeddings=True)
    return GPT2Config(vocab_size=vocab_size, n_embd=width, n_layer=layers, n_head=heads, n_positions=positions,
                      pad_token_id=pad_id, eos_token_id=eos_id, bos_token_id=eos_id, tie_word_embeddings=True,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def build_tiny_model(out: str | Path, arch: str = "llama", layers: int = 2, width: int = 64, heads: int = 4,
                     vocab_size: int = 64, positions: int = 64, seed: int = 0) -> Path:
    """Write a random-weight ``arch`` model (seeded) and the task tokenizer to ``out``; returns ``out``."""
    from opo_theory.lm.models.hf_check import transformers_module

    tf = transformers_module()
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; allowed: {', '.join(ARCHS)}")
    if width % heads:
        raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
    tokenizer = train_tokenizer(vocab_size, seed)
    cfg = model_config(arch, len(tokenizer), layers, width, heads, positions,
                       tokenizer.pad_token_id, tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(cfg)
    out = Path(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m opo_theory.lm.models.tiny_hf", description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="llama", choices=ARCHS)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = build_tiny_model(args.out, args.arch, args.layers, args.width, args.heads, args.vocab_size,
                            seed=args.seed)
    n = sum(p.numel() for p in _load_params(path))
    print(f"wrote {path} ({args.arch}, {n:,} parameters); train it with --model hf:{path} (its weights are "
          "random: it answers no problem, so a reward and accuracy of 0 are expected; it exercises the plumbing)")
    return 0


def _load_params(path: Path):
    from opo_theory.lm.models.hf import load_hf_policy
    return load_hf_policy(path).parameters()


if __name__ == "__main__":
    raise SystemExit(main())
