"""Reading a `compare` directory (summary.json, <run dir>/seed<k>/): per objective the seeds' metrics rows, run
records and pre-RL evaluations, for the figures, the report and the real-model summary."""

from __future__ import annotations

from pathlib import Path

from opo_theory.io import read_json
from opo_theory.lm.training.run_dir import PRE_RL, CompareDir, RunDir


def summary_of(directory: Path) -> dict:
    """A compare directory's summary.json, its fields the figures read checked (CompareDir.summary)."""
    return CompareDir(directory).summary()


def seed_run(directory: Path, label: str, seed: int) -> RunDir:
    """The run of one objective or variant and seed (summary.json's run_dirs; older runs: the label itself)."""
    return CompareDir(directory).seed_run(label, seed)


def load(directory: Path) -> dict[str, list[list[dict]]]:
    """{objective: [rows of seed 0, rows of seed 1, ...]} from out/<run dir>/seed<k>/metrics.jsonl."""
    summary = summary_of(directory)
    return {o: [seed_run(directory, o, s).read_metrics() for s in range(summary["seeds"])]
            for o in summary["objectives"]}


def seed_config(directory: Path, label: str, seed: int = 0) -> dict:
    """One run's config.json record (its 'config' table checked: one line naming the file when damaged)."""
    return seed_run(directory, label, seed).record()


def pre_rl(directory: Path) -> dict[str, list[dict]]:
    """{objective: [pre-RL evaluation of seed 0, ...]}: the trainer's pre_rl.json; for runs logged before it
    existed, what the logs still hold: the SFT warm-up's last greedy val accuracy (the cached policy is the one
    it evaluated when it stopped at an evaluation step) and step 0's sampled accuracy (its rollouts come from
    the policy before the first update). ``source`` says which."""
    summary = summary_of(directory)
    out = {}
    for o in summary["objectives"]:
        rows = []
        for s in range(summary["seeds"]):
            run = seed_run(directory, o, s)
            path = run.pre_rl
            if path.exists():
                record = read_json(path, "the pre-RL evaluation")
                if not isinstance(record, dict):
                    raise ValueError(f"{path} is not a JSON object: the file is damaged")
                rows.append({**record, "source": PRE_RL})
                continue
            record = seed_config(directory, o, s)
            sft, c = record["sft"], record["config"]
            evaluated = bool(sft.get("sft_steps")) and sft["sft_steps"] % c["sft_eval_every"] == 0   # SFT stops
            # only at evaluation steps, and at sft_max_steps, which is evaluated when a multiple of sft_eval_every
            first = run.read_metrics()[0]
            rows.append({"val/accuracy": sft["sft_val_accuracy"] if evaluated else None, "val/ood_accuracy": None,
                         "train/sampled_accuracy": first["accuracy"], "source": "sft-info+step0"})
        out[o] = rows
    return out
