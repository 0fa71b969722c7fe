"""LM run logs for figures: load a `compare` directory and reduce curves over seeds (mean, 95% band)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from opo_theory.figures.style import FIGURES_DIR, color
from opo_theory.io import repo_relative
from opo_theory.lm.compare import mean_ci95, read_metrics

RUNS_DIR = FIGURES_DIR / "runs" / "cpu-tiny"
RERUN_DIR = Path("runs") / "figures-rerun" / "cpu-tiny"
OBJECTIVES = ("opo", "grpo", "dapo", "gspo", "dr-grpo")


def compare_dir(rerun: bool) -> Path:
    """The committed logs, or (``rerun``) a fresh `compare` run with the same settings."""
    if not rerun:
        if not (RUNS_DIR / "summary.json").exists():
            raise ValueError(f"no committed LM logs at {RUNS_DIR}; run `opo-theory figures --rerun`")
        return RUNS_DIR
    from opo_theory.lm.compare import compare
    compare(list(OBJECTIVES), 3, "cpu-tiny", RERUN_DIR, resume=True, quiet=True)
    return RERUN_DIR


def load(directory: Path) -> dict[str, list[list[dict]]]:
    """{objective: [rows of seed 0, rows of seed 1, ...]} from out/<objective>/seed<k>/metrics.jsonl."""
    summary = json.loads((directory / "summary.json").read_text())
    return {o: [read_metrics(directory / o / f"seed{s}" / "metrics.jsonl") for s in range(summary["seeds"])]
            for o in summary["objectives"]}


def describe_setup(directory: Path) -> str:
    """One line on what the logged runs are, read from their config.json (preset, model, task, schedule)."""
    summary = json.loads((directory / "summary.json").read_text())
    objective = summary["objectives"][0]
    c = json.loads((directory / objective / "seed0" / "config.json").read_text())["config"]
    model = c.get("model", "char-gpt")         # runs logged before hf models existed have no model field
    model = f"char GPT ({c['n_layer']} layers x {c['n_embd']} wide)" if model == "char-gpt" else f"`{model}`"
    return (f"`{c['preset']}` {model} on arithmetic, train level "
            f"{c['train_level']}, OOD = held-out level {c['ood_level']}, {summary['seeds']} seeds, {c['steps']} RL "
            f"steps of {c['prompts_per_step']} prompts x {c['group_size']} responses, {c['ppo_epochs']} PPO epochs x "
            f"{c['minibatches']} mini-batches")


def curve(seed_rows: list[list[dict]], key: str, smooth: int = 1):
    """(steps, mean, low, high) of ``key`` over seeds at the steps where every seed logged it."""
    by_step: dict[int, list[float]] = {}
    for rows in seed_rows:
        vals = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        if smooth > 1 and vals:
            ys = np.convolve([v for _, v in vals], np.ones(smooth) / smooth, mode="valid")
            vals = list(zip([s for s, _ in vals][smooth - 1:], ys, strict=True))
        for s, v in vals:
            by_step.setdefault(s, []).append(float(v))
    steps = sorted(s for s, v in by_step.items() if len(v) == len(seed_rows))
    stats = [mean_ci95(by_step[s]) for s in steps]
    mean = np.array([m for m, _ in stats])
    half = np.nan_to_num(np.array([h for _, h in stats]))
    return np.array(steps), mean, mean - half, mean + half


def plot_metric(ax, runs: dict, key: str, ylabel: str, smooth: int = 1,
                clip: tuple[float, float] | None = None) -> dict:
    """One line per objective with its 95% band (band clipped to ``clip``); returns the plotted numbers."""
    data = {}
    for name, seed_rows in runs.items():
        steps, mean, lo, hi = curve(seed_rows, key, smooth)
        if len(steps) == 0:
            continue
        if clip is not None:    # a t-band can leave the metric's range (negative norms, |cos| > 1)
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        ax.plot(steps, mean, color=color(name), label=name)
        ax.fill_between(steps, lo, hi, color=color(name), alpha=0.18, lw=0)
        data[name] = {"step": steps.tolist(), "mean": mean.tolist(), "low": lo.tolist(), "high": hi.tolist()}
    ax.set_xlabel("RL step")
    ax.set_ylabel(ylabel)
    return data


def metric_range(key: str) -> tuple[float, float] | None:
    """The range a metric cannot leave (fractions in [0, 1], norms and entropies >= 0), else None."""
    if key in ("accuracy", "val/accuracy", "val/ood_accuracy") or key.startswith("clip/"):
        return (0.0, 1.0)
    if key.startswith(("grad/norm", "entropy/", "grad/response_efficiency")):
        return (0.0, np.inf)
    return None


def line_figure(name: str, panels: list[tuple[str, str, int, bool]], title: str, rerun: bool):
    """One panel per (metric key, y label, smoothing window, log y) from the compare runs; saved as ``name``."""
    from opo_theory.figures.style import new_figure, save_figure

    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(len(panels), 1)
    data = {}
    for ax, (key, ylabel, smooth, log_y) in zip(axes[0], panels, strict=True):
        data[key] = plot_metric(ax, runs, key, ylabel, smooth, clip=(1e-2, np.inf) if log_y else metric_range(key))
        if log_y:
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"{title} (cpu-tiny LM, mean and 95% band over seeds)", fontsize=9)
    return save_figure(fig, name, data, {"runs": repo_relative(directory)})
