"""Procedurally generated arithmetic with exact rewards: levels L1..L5, deterministic splits.

L1 one-digit sums; L2 two-digit add/sub; L3 three-digit add/sub and 2x1-digit products;
L4 two-step expressions with parentheses; L5 products of sums/differences with 2-digit terms;
L6 signed one-digit sums (a graded task for pretrained models: "-3-7", "5+(-2)", "-4+8").
A problem belongs to the validation split when crc32(prompt) % 5 == 0, else to train.

Prompts are shown raw ("12+34=") or (prompt_format=chat) as a question in the model's chat template
(``question``). Verifiers (``VERIFIERS``): ``strict`` = the stripped completion is exactly the answer;
``lenient`` = the last number in the text is the answer (for models that answer in prose); ``exact`` = the
stripped completion is exactly the answer, any non-empty text well formed (for a user's non-numeric answers,
opo_theory.lm.tasks.dataset).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np

from opo_theory.validation import require_choice

LEVELS = (1, 2, 3, 4, 5, 6)
SPLITS = ("train", "val")
# Distinct problems per (level, split), counted by enumerating every expression _expression can draw
# (tests/test_fuzz_cli.py recounts levels 1-2; its slow variant recounts all five).
SPLIT_SIZES = {(1, "train"): 84, (1, "val"): 16, (2, "train"): 15_986, (2, "val"): 4_014,
               (3, "train"): 1_600_536, (3, "val"): 400_464, (4, "train"): 319_895, (4, "val"): 80_105,
               (5, "train"): 3_200_524, (5, "val"): 799_476, (6, "train"): 576, (6, "val"): 146}
ANSWER = re.compile(r"-?\d+")
# a number in prose: a minus sign only where it cannot be a binary minus (not after a digit or ")"),
# thousands groups "1,000", an optional decimal part ("11.0"; "11." is 11 followed by a full stop)
NUMBER = re.compile(r"(?:(?<![\w)])-)?\d+(?:,\d{3})*(?:\.\d+)?(?!\d)")
PROMPT_FORMATS = ("raw", "chat")


@dataclass(frozen=True)
class Problem:
    prompt: str      # e.g. "12+34="
    answer: str      # e.g. "46"


def _expression(level: int, rng: np.random.Generator) -> str:
    r = lambda lo, hi: int(rng.integers(lo, hi + 1))
    op = lambda: "+-"[int(rng.integers(0, 2))]
    if level == 1:
        return f"{r(0, 9)}+{r(0, 9)}"
    if level == 2:
        return f"{r(0, 99)}{op()}{r(0, 99)}"
    if level == 3:
        return f"{r(0, 999)}{op()}{r(0, 999)}" if rng.random() < 0.6 else f"{r(0, 99)}*{r(0, 9)}"
    if level == 4:
        return f"({r(0, 99)}{op()}{r(0, 99)})*{r(0, 9)}" if rng.random() < 0.5 else f"{r(0, 99)}*{r(0, 9)}{op()}{r(0, 99)}"
    if level == 5:
        return f"({r(0, 99)}{op()}{r(0, 9)})*({r(0, 9)}{op()}{r(0, 99)})"
    a, b = r(-9, 9), r(-9, 9)
    return f"{a}{op()}{b}" if b >= 0 else f"{a}{op()}({b})"


def problems(level: int, split: str, n: int, seed: int) -> list[Problem]:
    """``n`` distinct problems of ``level`` in ``split``, deterministic in (level, split, seed)."""
    require_choice("level", level, LEVELS)
    require_choice("split", split, SPLITS)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n > SPLIT_SIZES[level, split]:       # else the loop below would draw 200 n times before failing
        raise ValueError(f"level {level} has only {SPLIT_SIZES[level, split]} distinct {split} problems, "
                         f"asked for {n}")
    rng = np.random.default_rng([seed, level, SPLITS.index(split)])
    out, seen = [], set()
    for _ in range(200 * n):
        expr = _expression(level, rng)
        if expr in seen or ((zlib.crc32(expr.encode()) % 5 == 0) != (split == "val")):
            continue
        seen.add(expr)
        out.append(Problem(expr + "=", str(eval(expr))))  # noqa: S307 - generated digits/operators only
        if len(out) == n:
            return out
    raise ValueError(f"level {level} has fewer than {n} distinct {split} problems")


def question(prompt: str) -> str:
    """The chat form of a raw prompt: "12+34=" -> "What is 12+34? Answer with the number only."."""
    return f"What is {prompt.removesuffix('=')}? Answer with the number only."


def last_number(text: str) -> float | None:
    """The value of the last number in ``text`` ("3 + 8 = 11" -> 11, "The answer is -4." -> -4,
    "1,000" -> 1000, "8-3" -> 3: a minus after a digit is an operator), None when it holds none."""
    found = NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def strict(text: str, answer: str) -> tuple[bool, bool]:
    """(correct, well formed): the stripped text is exactly the answer / an integer."""
    text = text.strip()
    return text == answer, ANSWER.fullmatch(text) is not None


def lenient(text: str, answer: str) -> tuple[bool, bool]:
    """(correct, well formed): the last number of the text equals the answer / the text holds a number."""
    value = last_number(text)
    return value is not None and value == float(answer), value is not None


def exact(text: str, answer: str) -> tuple[bool, bool]:
    """(correct, well formed): the stripped text is exactly the answer / is not empty."""
    text = text.strip()
    return text == answer, bool(text)


VERIFIERS = {"strict": strict, "lenient": lenient, "exact": exact}


def reward(completion: str, answer: str, shaping: float = 0.0, verifier: str = "strict") -> tuple[float, bool]:
    """(reward, correct): 1 when ``verifier`` accepts the completion; else ``shaping`` if well formed, 0 if not."""
    correct, formed = VERIFIERS[verifier](completion, answer)
    return (1.0 if correct else shaping if formed else 0.0), correct
