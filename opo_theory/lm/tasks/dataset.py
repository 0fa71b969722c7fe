"""A user's own problems from a JSONL file (the ``dataset`` setting): parsing, checks, a seeded train/val split.

One JSON object per line (blank lines are skipped), a prompt and a reference answer in any of these forms:

  {"prompt": "12+34=", "answer": "46"}                                   plain
  {"prompt": "12+34=", "solution": "46"}                                 TRL: the column trl.rewards.accuracy_reward reads
  {"prompt": "12+34=", "completion": "46"}                               TRL's prompt-completion rows
  {"prompt": [{"role": "user", "content": "12+34="}],                    verl's RL rows (opo_theory.integrations.
   "reward_model": {"ground_truth": "46"}}                                verl_data writes them as parquet)

The answer is the first of answer, solution, completion, reward_model.ground_truth a row has (a string or an
integer; surrounding whitespace is dropped). A chat prompt is one user message; its text is the prompt. Other
keys (data_source, extra_info, ...) are ignored. The problems are shown as written (prompt_format=chat sends the
text as the user message, without the built-in task's "What is ...?") and judged by the ``verifier`` setting.

Split (``split``): a permutation seeded by sft_seed; its first min(val_size, max(1, n // 5)) problems are the
validation set, the rest the train pool (its first pool_size). There is no OOD set (val/ood_accuracy is null).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opo_theory.lm.tasks.arithmetic import Problem, question
from opo_theory.validation import show

NONE = "none"                     # the dataset setting's default: the built-in arithmetic task
ANSWER_KEYS = ("answer", "solution", "completion")      # then reward_model.ground_truth (verl)
SPLIT_SALT = 0x0DA7A              # keeps the split's stream apart from other streams seeded by sft_seed


@dataclass(frozen=True)
class Row(Problem):
    """A problem and the line of the file it came from (for error messages)."""

    line: int = 0


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes (ValueError naming the file when it cannot be read)."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"dataset {path}: no such file" + (" (a directory)" if path.is_dir() else ""))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"dataset {path}: cannot be read ({exc.strerror})") from None


def _text(value, what: str, where: str) -> str:
    """A non-empty string (an integer answer is taken as its decimal text), stripped."""
    if isinstance(value, int) and not isinstance(value, bool) and what == "answer":
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{where}: the {what} must be a string, got {show(value)}")
    if not value.strip():
        raise ValueError(f"{where}: the {what} is empty")
    return value.strip() if what == "answer" else value


def _prompt(row: dict, where: str) -> str:
    """The prompt text: a string, or a chat list of exactly one user message."""
    if "prompt" not in row:
        raise ValueError(f"{where}: no 'prompt' field (keys: {', '.join(row) or 'none'})")
    prompt = row["prompt"]
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], dict) or prompt[0].get("role") != "user":
            raise ValueError(f"{where}: a chat prompt must be one user message [{{\"role\": \"user\", \"content\": "
                             f"...}}], got {show(prompt)}")
        return _text(prompt[0].get("content"), "prompt", where)
    return _text(prompt, "prompt", where)


def _answer(row: dict, where: str) -> str:
    """The first answer field the row has (ANSWER_KEYS, then reward_model.ground_truth)."""
    for key in ANSWER_KEYS:
        if key in row:
            return _text(row[key], "answer", where)
    reward_model = row.get("reward_model")
    if isinstance(reward_model, dict) and "ground_truth" in reward_model:
        return _text(reward_model["ground_truth"], "answer", where)
    raise ValueError(f"{where}: no answer field (one of {', '.join(ANSWER_KEYS)} or reward_model.ground_truth)")


def parse(data: bytes, name: str) -> list[Row]:
    """The problems of a JSONL file's bytes; ValueError "NAME line N: what is wrong" for the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"dataset {name} is not UTF-8 text (byte {exc.start})") from None
    out, first_line = [], {}
    for n, line in enumerate(text.split("\n"), 1):       # not splitlines: U+2028 may stand inside a JSON string
        if not line.strip():
            continue
        where = f"dataset {name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where} is not a JSON object, got {show(row)}")
        problem = Row(_prompt(row, where), _answer(row, where), n)
        if problem.prompt in first_line:
            raise ValueError(f"{where} repeats the prompt of line {first_line[problem.prompt]} (a repeated prompt "
                             "could land in both train and val)")
        first_line[problem.prompt] = n
        out.append(problem)
    if not out:
        raise ValueError(f"dataset {name} is empty: it needs one JSON object per line, e.g. "
                         '{"prompt": "12+34=", "answer": "46"}')
    return out


def load(path: str | Path, sha256: str | None = None) -> list[Row]:
    """The problems of the JSONL file at ``path``; with ``sha256``, the file must still have that content."""
    data = _read_bytes(path)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"dataset {path} changed since this run was configured (its SHA-256 is no longer "
                         f"{sha256[:12]}...): a changed file is a different run")
    return parse(data, str(path))


def split(items: list[Problem], val_size: int, pool_size: int, seed: int) -> dict[str, list[Problem]]:
    """{train, val, ood}: a permutation seeded by ``seed``; val its first min(val_size, max(1, n // 5)) problems,
    train the first ``pool_size`` of the rest, ood empty."""
    if len(items) < 2:
        raise ValueError(f"a dataset needs at least 2 problems (one to train on, one to validate), got {len(items)}")
    order = np.random.default_rng([seed, SPLIT_SALT]).permutation(len(items)).tolist()
    n_val = min(val_size, max(1, len(items) // 5))
    return {"train": [items[i] for i in order[n_val:]][:pool_size], "val": [items[i] for i in order[:n_val]],
            "ood": []}


def check_characters(items: list[Row], allowed: str, path: str) -> None:
    """Every prompt and answer character is in the char GPT's vocabulary ``allowed`` (else one line naming the
    character, the line and the way out)."""
    for p in items:
        for what, text in (("prompt", p.prompt), ("answer", p.answer)):
            bad = next((c for c in text if c not in allowed), None)
            if bad is not None:
                raise ValueError(f"dataset {path} line {p.line}: character {bad!r} in the {what} is not in the char "
                                 f"GPT's vocabulary {allowed!r}; use a pretrained model (--model smollm2-135m or "
                                 "hf:DIR)")


def check_verifier(items: list[Row], verifier: str, path: str) -> None:
    """The lenient verifier compares numbers: every answer must be a finite number ("46", "-3", "2.5")."""
    if verifier != "lenient":
        return
    for p in items:
        try:
            ok = math.isfinite(float(p.answer))
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"dataset {path} line {p.line}: answer {show(p.answer, 40)} is not a number, which the "
                             "lenient verifier needs (use verifier=strict or exact)")


def dataset_pools(cfg) -> dict[str, list[Problem]]:
    """{train, val, ood} from cfg.dataset (content checked against cfg.dataset_sha256), split by cfg.sft_seed;
    refused in one line when the RL pool is smaller than prompts_per_step, when train_fraction < 1 would be a share
    of a pool_size larger than the training problems, or when the char GPT cannot read it."""
    from opo_theory.lm.models.backend import CHAR_GPT
    from opo_theory.lm.models.tokenizer import CHARS

    items = load(cfg.dataset, cfg.dataset_sha256 or None)
    check_verifier(items, cfg.verifier, cfg.dataset)
    pools = split(items, cfg.val_size, cfg.pool_size, cfg.sft_seed)
    if cfg.train_fraction < 1 and cfg.pool_size > len(pools["train"]):
        raise ValueError(f"train_fraction={cfg.train_fraction:g} is a share of pool_size ({cfg.pool_size}), but dataset "
                         f"{cfg.dataset} leaves {len(pools['train'])} training problems: set pool_size="
                         f"{len(pools['train'])}")
    rl = min(len(pools["train"]), cfg.rl_pool_size())
    if rl < cfg.prompts_per_step:
        raise ValueError(f"dataset {cfg.dataset} has too few problems for prompts_per_step={cfg.prompts_per_step}: "
                         f"{len(items)} problems, {len(pools['val'])} held out for validation, {rl} left for RL "
                         f"(pool_size {cfg.pool_size}, train_fraction {cfg.train_fraction:g}); lower prompts_per_step "
                         "or add problems")
    if cfg.model == CHAR_GPT:
        check_characters(items, CHARS, cfg.dataset)
    return pools


def as_written(text: str) -> str:
    """A user's prompt is its own chat message (the identity)."""
    return text


def chat_text(cfg) -> Callable[[str], str]:
    """What prompt_format=chat sends as the user message: the built-in task's question ("What is 12+34? ..."),
    or a user's prompt as written."""
    return question if cfg.dataset == NONE else as_written
