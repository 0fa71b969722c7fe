"""Writes examples/data/sums.jsonl: 200 sums of three one-digit numbers ("3+5+1=" -> "9"), one
{"prompt", "answer"} object per line, in the characters the char GPT reads. Deterministic:

    python examples/make_sums.py            # rewrites the committed file byte for byte
"""

import itertools
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data" / "sums.jsonl"


def sums(n: int = 200, seed: int = 0) -> list[dict]:
    """``n`` distinct problems a+b+c= (digits 0-9), in a seeded random order."""
    triples = list(itertools.product(range(10), repeat=3))
    random.Random(seed).shuffle(triples)
    return [{"prompt": f"{a}+{b}+{c}=", "answer": str(a + b + c)} for a, b, c in triples[:n]]


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in sums()))
    tmp.replace(OUT)                      # atomic: a killed run leaves the old file
    print(f"wrote {OUT}")
