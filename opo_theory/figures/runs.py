"""LM run logs for figures: load a `compare` directory and reduce curves over seeds (mean and 95% band;
positive quantities get a log-space band, which cannot reach zero)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from opo_theory.figures.style import FIGURES_DIR, colors
from opo_theory.io import repo_relative
from opo_theory.lm.experiments.comparison import load, pre_rl, seed_config, seed_run, summary_of  # noqa: F401 (the figures' API)
from opo_theory.lm.training.run_dir import PRE_RL, CompareDir
from opo_theory.stats import mean_ci95, mean_ci95_log

RUNS_DIR = FIGURES_DIR / "runs" / "cpu-tiny"
SCARCE_DIR = FIGURES_DIR / "runs" / "cpu-tiny-scarce"     # Exp 2's data-scarce runs (paper_repro/regen_runs.sh)
LONG_DIR = FIGURES_DIR / "runs" / "cpu-tiny-long"         # optional >= 200-step runs (regen_runs.sh with LONG=1)
SFT1_DIR = FIGURES_DIR / "runs" / "cpu-tiny-sft1"         # the main comparison from a second SFT start
LR_DIR = FIGURES_DIR / "runs" / "cpu-tiny-lr"             # opo/grpo/dapo/gspo at the other learning rates
RERUN_DIR = Path("runs") / "figures-rerun" / "cpu-tiny"
OBJECTIVES = ("opo", "grpo", "dapo", "gspo", "dr-grpo")
PRE_RL_FILE = PRE_RL         # written by the trainer before the first update (RunDir.pre_rl)
# The trainer's norm of the update actually applied, theta_after - theta_before (after clipping and AdamW);
# one constant, so a rename is one edit.
APPLIED_KEY = "grad/update_norm"     # docs/metrics.md: the parameter step actually applied


def compare_dir(rerun: bool) -> Path:
    """The `compare` output chosen by ``figures --runs`` (opo_theory.figures.source), else the committed logs,
    or (``rerun``) a fresh `compare` run with the same settings."""
    from opo_theory.figures.source import chosen_runs, rerun_once

    if chosen_runs() is not None:
        return chosen_runs()
    if not rerun:
        if not CompareDir(RUNS_DIR).finished():
            raise ValueError(f"no committed LM logs at {RUNS_DIR}; run `opo-theory figures --rerun`")
        return RUNS_DIR
    return rerun_once(RERUN_DIR, OBJECTIVES)


def committed(directory: Path, rerun: bool) -> bool:
    """True when the figures read the committed logs (no --runs, no --rerun) and ``directory`` holds a compare."""
    from opo_theory.figures.source import chosen_runs

    return not rerun and chosen_runs() is None and CompareDir(directory).finished()


def exp2_dir(rerun: bool) -> Path:
    """Exp 2 (Table 2, Fig 9): the committed data-scarce runs when they exist, else compare_dir's runs."""
    return SCARCE_DIR if committed(SCARCE_DIR, rerun) else compare_dir(rerun)


def positive(key: str) -> bool:
    """Metrics that are > 0 by construction (norms, entropies, efficiency, max|Delta|): log-space bands."""
    return key.startswith(("grad/norm", "entropy/", "grad/response_efficiency", "delta/abs_max")) or key == APPLIED_KEY


def describe_setup(directory: Path) -> str:
    """One line on what the logged runs are, read from their config.json (preset, model, task, schedule)."""
    summary = summary_of(directory)
    c = seed_config(directory, summary["objectives"][0])["config"]
    model = c.get("model", "char-gpt")         # runs logged before hf models existed have no model field
    model = f"char GPT ({c['n_layer']} layers x {c['n_embd']} wide)" if model == "char-gpt" else f"`{model}`"
    data = ""
    if c.get("train_fraction", 1.0) < 1.0 or c.get("prompt_sampling", "replacement") == "epochs":
        n = max(1, round(c.get("train_fraction", 1.0) * c["pool_size"]))
        data = (f", {n} training problems ({c.get('train_fraction', 1.0):g} of the pool) drawn "
                + ("without replacement, " if c.get("prompt_sampling") == "epochs" else "with replacement, ")
                + f"{c['prompts_per_step'] * c['steps'] / n:.1f} epochs")
    return (f"`{c['preset']}` {model} on arithmetic, train level "
            f"{c['train_level']}, OOD = held-out level {c['ood_level']}, {summary['seeds']} seeds, {c['steps']} RL "
            f"steps of {c['prompts_per_step']} prompts x {c['group_size']} responses, {c['ppo_epochs']} PPO epochs x "
            f"{c['minibatches']} mini-batches{data}")


def reward_is_accuracy(directory: Path) -> bool:
    """True when every run's reward is exactly its accuracy: no partial credit (shaping 0) and no overlong penalty."""
    return not shaped_objectives(directory)


def shaped_objectives(directory: Path) -> list[str]:
    """The objectives (variants) whose reward is not its accuracy: partial credit or DAPO's overlong penalty."""
    summary = summary_of(directory)
    return [o for o in summary["objectives"]
            if any(c["shaping"] != 0 or c.get("overlong_buffer", 0)
                   for c in (seed_config(directory, o, s)["config"] for s in range(summary["seeds"])))]


def reward_note(directory: Path) -> str:
    """One phrase saying whether the runs' reward is their accuracy, and for which it is not."""
    shaped = shaped_objectives(directory)
    if not shaped:
        return "reward = accuracy (shaping 0)"
    return f"reward = accuracy except for {', '.join(shaped)} (partial credit or DAPO's overlong penalty)"


def reward_label(directory: Path, smooth: int) -> str:
    """The y label of a reward axis: says when the reward is the accuracy."""
    what = "reward = accuracy (shaping 0)" if reward_is_accuracy(directory) else "mean reward"
    return what + (f" ({smooth}-step moving average)" if smooth > 1 else "")


def band(values: list[float], log: bool) -> tuple[float, float, float]:
    """(centre, low, high) over seeds: mean and t-interval, or (``log``) geometric mean and log-space t-interval.
    With one seed the band is the value itself."""
    if log:
        m, lo, hi = mean_ci95_log(values)
    else:
        m, h = mean_ci95(values)
        lo, hi = m - h, m + h
    return (m, m, m) if math.isnan(lo) else (m, lo, hi)


def fitted_window(seed_rows: list[list[dict]], key: str, smooth: int) -> int:
    """The moving-average window for ``key``: ``smooth``, shortened for runs too short to fill it so that the
    shortest seed still gives two points (one for a one-step run) instead of an empty curve."""
    logged = min((sum(1 for r in rows if r.get(key) is not None) for rows in seed_rows), default=0)
    return max(1, min(smooth, logged - 1))


def curve(seed_rows: list[list[dict]], key: str, smooth: int = 1, log: bool = False):
    """(steps, centre, low, high) of ``key`` over seeds at the steps where every seed logged it; the moving
    average is over ``fitted_window`` steps."""
    smooth = fitted_window(seed_rows, key, smooth)
    by_step: dict[int, list[float]] = {}
    for rows in seed_rows:
        vals = [(r["step"], r[key]) for r in rows if key in r and r[key] is not None]
        if smooth > 1 and vals:
            ys = np.convolve([v for _, v in vals], np.ones(smooth) / smooth, mode="valid")
            vals = list(zip([s for s, _ in vals][smooth - 1:], ys, strict=True))
        for s, v in vals:
            by_step.setdefault(s, []).append(float(v))
    steps = sorted(s for s, v in by_step.items() if len(v) == len(seed_rows))
    stats = np.array([band(by_step[s], log) for s in steps]).reshape(-1, 3)
    return np.array(steps), stats[:, 0], stats[:, 1], stats[:, 2]


def plot_metric(ax, runs: dict, key: str, ylabel: str, smooth: int = 1, log: bool | None = None,
                clip: tuple[float, float] | None = None, style: str = "-", suffix: str = "",
                palette: dict[str, str] | None = None) -> dict:
    """One line per objective with its 95% band (log-space for positive metrics unless ``log`` says otherwise;
    a linear band clipped to ``clip``, the metric's range); returns the plotted numbers."""
    log = positive(key) if log is None else log
    palette = palette or colors(list(runs))
    data = {}
    shortened = set()
    for name, seed_rows in runs.items():
        steps, mean, lo, hi = curve(seed_rows, key, smooth, log)
        if len(steps) == 0:
            continue
        if clip is not None and not log:    # a linear t-band can leave the metric's range (fractions)
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        ax.plot(steps, mean, style, color=palette[name], label=name + suffix, marker="o" if len(steps) == 1 else "")
        ax.fill_between(steps, lo, hi, color=palette[name], alpha=0.15, lw=0)
        data[name] = {"step": steps.tolist(), "mean": mean.tolist(), "low": lo.tolist(), "high": hi.tolist(),
                      "band": "geometric mean, log-space 95% t-interval" if log else "mean, 95% t-interval"}
        if (window := fitted_window(seed_rows, key, smooth)) < smooth:   # runs shorter than the window
            data[name]["smooth"] = window
            shortened.add(window)
    window = "/".join(map(str, sorted(shortened)))
    ax.set_xlabel("RL step" + (f" (runs too short for a {smooth}-step average: {window}-step)" if shortened else ""))
    ax.set_ylabel(ylabel.replace(f"{smooth}-step", f"{window}-step") if shortened else ylabel)
    return data


def set_log(ax) -> None:
    """Log y axis when the panel has a positive value to show (a panel left empty by short runs stays linear)."""
    from matplotlib.collections import PathCollection

    ys = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    ys += [np.asarray(c.get_offsets(), dtype=float).reshape(-1, 2)[:, 1] for c in ax.collections
           if isinstance(c, PathCollection)]                          # scatter points
    if any(((y > 0) & np.isfinite(y)).any() for y in ys):
        ax.set_yscale("log")


def metric_range(key: str) -> tuple[float, float] | None:
    """The range a metric cannot leave (fractions in [0, 1], norms and entropies >= 0), else None."""
    if key in ("accuracy", "val/accuracy", "val/ood_accuracy") or key.startswith("clip/"):
        return (0.0, 1.0)
    if positive(key):
        return (0.0, np.inf)
    return None


def band_note(runs: dict, keys: list[str]) -> str:
    """Caption text for the bands drawn."""
    seeds = len(next(iter(runs.values())))
    kinds = {"geometric mean, log-space 95% t-band" if positive(k) else "mean, 95% t-band" for k in keys}
    return f"{' / '.join(sorted(kinds))} over {seeds} seeds"


def line_figure(name: str, panels: list[tuple[str, str, int, bool]], title: str, rerun: bool,
                extra=None):
    """One panel per (metric key, y label, smoothing window, log y) from the compare runs; saved as ``name``;
    ``extra(runs)`` adds computed entries to the JSON."""
    from opo_theory.figures.style import legend_outside, new_figure, save_figure

    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(len(panels), 1)
    data = {}
    for ax, (key, ylabel, smooth, log_y) in zip(axes[0], panels, strict=True):
        data[key] = plot_metric(ax, runs, key, ylabel, smooth, clip=metric_range(key))
        if log_y:
            set_log(ax)
    if axes[0, 0].get_legend_handles_labels()[0]:          # no legend for a panel the runs left empty
        legend_outside(axes[-1, -1], handles=axes[0, 0].get_legend_handles_labels()[0], fontsize=7)
    if extra is not None:
        data.update(extra(runs))
    fig.suptitle(f"{title} ({summary_of(directory)['preset']} LM, {band_note(runs, [p[0] for p in panels])})", fontsize=9)
    return save_figure(fig, name, data, {"runs": repo_relative(directory)})
