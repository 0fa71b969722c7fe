"""`compare`: several objectives x seeds from the same SFT policy; summary.json / summary.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from opo_theory.io import read_jsonl, write_json_atomic, write_text_atomic
from opo_theory.lm.config import TrainConfig, make_config
from opo_theory.lm.trainer import Trainer, check_run_dir
from opo_theory.validation import require_int, require_output_dir, show

MAX_SEEDS = 1_000

SUMMARY_KEYS = {  # summary name -> (metric key, how many final steps to average; 0 = last evaluation)
    "final_reward": ("reward/mean", 10), "final_accuracy": ("accuracy", 10),
    "val_accuracy": ("val/accuracy", 0), "ood_accuracy": ("val/ood_accuracy", 0),
    "grad_norm_last20": ("grad/norm", 20), "entropy_last20": ("entropy/mean", 20),
    "delta_m3_last20": ("delta/m3", 20), "response_efficiency_last20": ("grad/response_efficiency", 20),
}


def read_metrics(path: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (a half-written last row is left out)."""
    if not Path(path).exists():
        raise ValueError(f"no metrics at {path}: the run has not started")
    return read_jsonl(path)


def tail_mean(rows: list[dict], key: str, last: int) -> float:
    """Mean of the last ``last`` finite values of ``key`` in one run (0 = the last value only); null is missing."""
    vals = [r[key] for r in rows if key in r and r[key] is not None and math.isfinite(r[key])]
    vals = vals[-1:] if last == 0 else vals[-last:]
    return float(np.mean(vals)) if vals else math.nan


def run_summary(rows: list[dict]) -> dict[str, float]:
    """Each SUMMARY_KEYS statistic of one run."""
    return {name: tail_mean(rows, key, last) for name, (key, last) in SUMMARY_KEYS.items()}


def mean_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval over seeds (nan for a single seed); None/nan are skipped."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2:
        return float(x.mean()), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def summarize(out: Path, objectives: list[str], seeds: int) -> dict:
    table = {}
    for name in objectives:
        per_seed = [run_summary(read_metrics(out / name / f"seed{s}" / "metrics.jsonl")) for s in range(seeds)]
        table[name] = {k: dict(zip(("mean", "ci95"), mean_ci95([p[k] for p in per_seed]), strict=True))
                       | {"seeds": [p[k] for p in per_seed]} for k in SUMMARY_KEYS}
    return table


def markdown(table: dict) -> str:
    cols = list(SUMMARY_KEYS)
    lines = ["| objective | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{row[c]['mean']:.3g} ± {row[c]['ci95']:.2g}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nmean ± half-width of the 95% t-interval over seeds.\n"


def check_outputs(out: str | Path, cfg: TrainConfig) -> None:
    """The run directory and the SFT cache must be (creatable) writable directories; nothing is left behind."""
    require_output_dir("--out", out)
    require_output_dir("sft_cache", cfg.sft_cache)


def compare(objectives: list[str], seeds: int, preset: str, out: str | Path, settings=None,
            steps: int | None = None, resume: bool = False, quiet: bool = False, model: str | None = None) -> dict:
    """Train every objective for seeds 0..seeds-1 under out/<objective>/seed<k>, then summarize."""
    out = Path(out)
    if not objectives:
        raise ValueError("--objectives must name at least one objective")
    repeated = sorted({o for o in objectives if objectives.count(o) > 1})
    if repeated:
        raise ValueError(f"--objectives lists {', '.join(map(show, repeated))} more than once")
    require_int("--seeds", seeds, 1, MAX_SEEDS)
    configs = {(o, s): make_config(o, preset, s, settings, steps, model) for o in objectives for s in range(seeds)}
    check_outputs(out, next(iter(configs.values())))     # every config, path and run directory checked
    for (name, seed), cfg in configs.items():              # before any work starts
        check_run_dir(out / name / f"seed{seed}", cfg, resume)
    for (name, seed), cfg in configs.items():     # a finished run resumes at its last step: nothing to do
        Trainer(cfg, out / name / f"seed{seed}", resume=resume, quiet=quiet).run()
    table = summarize(out, objectives, seeds)
    write_json_atomic(out / "summary.json", {"preset": preset, "seeds": seeds, "objectives": objectives,
                                             "settings": settings or [], "model": next(iter(configs.values())).model if configs else None,
                                             "table": table})
    write_text_atomic(out / "summary.md", markdown(table))
    return table
