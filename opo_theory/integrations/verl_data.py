"""The toolkit's arithmetic task as verl data: parquet files in verl's RL format and their reward function.

    python -m opo_theory.integrations.verl_data OUT_DIR [--level 2] [--train 1000] [--val 200] [--seed 0]
        [--prompt-format chat|raw] [--verifier strict|lenient|exact] [--shaping 0.0]

writes OUT_DIR/train.parquet and OUT_DIR/val.parquet, one row per problem (opo_theory.lm.tasks.arithmetic), in the
columns verl's RLHFDataset and reward managers read:
  data_source   DATA_SOURCE (verl picks the reward function by it; ``compute_score`` checks it)
  prompt        the chat messages [{"role": "user", "content": ...}]: the question ("What is 12+34?
                Answer with the number only.", prompt-format chat) or the raw prompt ("12+34=")
  ability       "math"
  reward_model  {"style": "rule", "ground_truth": the answer}
  extra_info    {"split", "index", "level", "raw_prompt", "verifier", "shaping"}
``compute_score`` is the reward function for verl's ``reward.custom_reward_function`` (path
``pkg://opo_theory.integrations.verl_data``, name ``compute_score``): the toolkit's ``task.reward`` with
the verifier and shaping the exporter wrote into ``extra_info`` (README, section verl). pyarrow is needed
only to write the files (verl installs it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from opo_theory.io import write_bytes_atomic
from opo_theory.lm.tasks.arithmetic import (
    PROMPT_FORMATS,
    SPLITS,
    VERIFIERS,
    problems,
    question,
    reward,
)
from opo_theory.validation import (
    require_choice,
    require_int,
    require_nonnegative,
    require_output_dir,
    show,
)

DATA_SOURCE = "opo_theory/arithmetic"
ABILITY = "math"


def prompt_text(raw: str, prompt_format: str) -> str:
    """What the user message says: the chat question or the raw prompt."""
    return question(raw) if require_choice("prompt_format", prompt_format, PROMPT_FORMATS) == "chat" else raw


def rows(level: int, split: str, n: int, seed: int = 0, prompt_format: str = "chat",
         verifier: str = "strict", shaping: float = 0.0) -> list[dict]:
    """``n`` problems of ``level`` in ``split`` as verl RL rows (see the module docstring)."""
    require_choice("verifier", verifier, VERIFIERS)
    require_nonnegative("shaping", shaping)
    return [{"data_source": DATA_SOURCE,
             "prompt": [{"role": "user", "content": prompt_text(p.prompt, prompt_format)}],
             "ability": ABILITY,
             "reward_model": {"style": "rule", "ground_truth": p.answer},
             "extra_info": {"split": split, "index": i, "level": level, "raw_prompt": p.prompt,
                            "verifier": verifier, "shaping": float(shaping)}}
            for i, p in enumerate(problems(level, split, n, seed))]


def parquet_bytes(table_rows: list[dict]) -> bytes:
    """The rows as one parquet file (pyarrow infers the nested struct and list columns)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("writing verl parquet files needs pyarrow (pip install pyarrow; verl installs it)") from None
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(table_rows), sink)
    return sink.getvalue().to_pybytes()


def export(out_dir: str | Path, level: int = 2, train: int = 1000, val: int = 200, seed: int = 0,
           prompt_format: str = "chat", verifier: str = "strict", shaping: float = 0.0) -> dict[str, Path]:
    """Write OUT_DIR/{train,val}.parquet (each file whole or not at all); returns {split: path}."""
    out = require_output_dir("out_dir", out_dir)
    sizes = {"train": require_int("train", train, 1), "val": require_int("val", val, 1)}
    tables = {split: rows(level, split, sizes[split], seed, prompt_format, verifier, shaping) for split in SPLITS}
    return {split: write_bytes_atomic(out / f"{split}.parquet", parquet_bytes(t)) for split, t in tables.items()}


def compute_score(data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None,
                  **_unused) -> float:
    """verl reward: task.reward(solution, answer, shaping, verifier), both read from ``extra_info``
    (defaults: strict, shaping 0)."""
    if data_source != DATA_SOURCE:
        raise ValueError(f"compute_score scores data_source {DATA_SOURCE!r} only, got {show(data_source)}")
    info = extra_info or {}
    verifier = require_choice("extra_info.verifier", info.get("verifier", "strict"), VERIFIERS)
    shaping = require_nonnegative("extra_info.shaping", info.get("shaping", 0.0))
    return reward(solution_str, str(ground_truth), shaping, verifier)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m opo_theory.integrations.verl_data",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-format", default="chat", choices=PROMPT_FORMATS)
    ap.add_argument("--verifier", default="strict", choices=tuple(VERIFIERS))
    ap.add_argument("--shaping", type=float, default=0.0)
    args = ap.parse_args(argv)
    try:
        paths = export(args.out_dir, args.level, args.train, args.val, args.seed, args.prompt_format,
                       args.verifier, args.shaping)
    except ValueError as exc:
        ap.error(str(exc))
    for split, path in paths.items():
        print(f"wrote {path} ({split})")
    print(f"verl: data.train_files={paths['train']} data.val_files={paths['val']} "
          "reward.custom_reward_function.path=pkg://opo_theory.integrations.verl_data "
          "reward.custom_reward_function.name=compute_score")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
