"""Fig 7: (a) gradient norm vs mean reward, (b) gradient response efficiency ||grad|| / (½ AdvRange) vs step,
pre-clip and applied; verdict on the paper's OPO/GRPO efficiency ratio (~5x)."""

from __future__ import annotations

import math

import numpy as np

from opo_theory.figures.runs import (
    band_note,
    compare_dir,
    curve,
    fitted_window,
    load,
    plot_metric,
    seed_config,
    set_log,
)
from opo_theory.figures.style import colors, new_figure, objective_legend, save_figure
from opo_theory.io import repo_relative
from opo_theory.stats import WINDOWS, judge_range, mean_ci95_log, window_mean

NAME = "fig7-saturation"
EFF, APPLIED_EFF = "grad/response_efficiency", "grad/response_efficiency_applied"
# The paper's levels (Exp 1): OPO ~1.0-1.5, GRPO ~0.2-0.3, so OPO/GRPO lies in [1.0/0.3, 1.5/0.2] (~5x).
PAPER = {"opo": (1.0, 1.5), "grpo": (0.2, 0.3)}
PAPER_RATIO = (PAPER["opo"][0] / PAPER["grpo"][1], PAPER["opo"][1] / PAPER["grpo"][0])


def with_applied_efficiency(runs: dict, clip: dict[str, float]) -> dict:
    """Rows with the efficiency of the applied step: efficiency x min(||grad||, clip) / ||grad||."""
    def row(r, c):
        if r.get(EFF) is None or not r.get("grad/norm"):
            return r
        return {**r, APPLIED_EFF: r[EFF] * min(r["grad/norm"], c) / r["grad/norm"]}
    return {n: [[row(r, clip[n]) for r in rows] for rows in s] for n, s in runs.items()}


def ratio_verdict(runs: dict, key: str, num: str = "opo", den: str = "grpo") -> dict | None:
    """Per seed, the ratio of window means of ``key`` (num / den, seed k paired with seed k) in every averaging
    window; its geometric mean and log-space 95% interval; where it lies against PAPER_RATIO ('inside',
    'overlaps', 'below', 'above'; 'undetermined' without two seeds that have a finite ratio) and the verdict
    (stats.judge_range: verified / refuted / undetermined), stated only when every window agrees."""
    if num not in runs or den not in runs:
        return None
    out = {"paper_ratio": list(PAPER_RATIO), "windows": {}}
    calls = []
    for w in WINDOWS:
        pairs = [(window_mean(a, key, w), window_mean(b, key, w)) for a, b in zip(runs[num], runs[den], strict=True)]
        ratios = [x / y if y > 0 else math.nan for x, y in pairs]        # nan: no efficiency to divide by
        gm, lo, hi = mean_ci95_log(ratios)
        call = ("undetermined" if math.isnan(lo) else        # fewer than 2 seeds with a finite ratio
                "inside" if PAPER_RATIO[0] <= lo and hi <= PAPER_RATIO[1] else
                "overlaps" if lo <= PAPER_RATIO[1] and hi >= PAPER_RATIO[0] else
                "below" if hi < PAPER_RATIO[0] else "above")
        out["windows"][str(w)] = {"ratio": gm, "low": lo, "high": hi, "seeds": ratios, "call": call,
                                  "verdict": judge_range(lo, hi, PAPER_RATIO)}
        levels = {n: float(np.mean([window_mean(r, key, w) for r in runs[n]])) for n in (num, den)}
        out["windows"][str(w)]["levels"] = levels
        calls.append(call)
    verdicts = {x["verdict"] for x in out["windows"].values()}
    out["call"] = calls[0] if len(set(calls)) == 1 else "window-dependent"
    out["verdict"] = verdicts.pop() if len(verdicts) == 1 else "undetermined"
    return out


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    palette = colors(list(runs))
    clip = {name: seed_config(directory, name)["config"]["grad_clip"] for name in runs}
    runs = with_applied_efficiency(runs, clip)
    fig, axes = new_figure(2, 1, width=4.6, layout="constrained")
    data = {"scatter": {}}
    for name, seed_rows in runs.items():
        _, reward, _, _ = curve(seed_rows, "reward/mean", smooth=5)
        _, grad, _, _ = curve(seed_rows, "grad/norm", smooth=5, log=True)
        n = min(len(reward), len(grad))
        shown = grad[:n] > 0                                  # a log axis: steps without a gradient are left out
        axes[0, 0].scatter(reward[:n][shown], grad[:n][shown], s=6, color=palette[name], label=name, alpha=0.7)
        data["scatter"][name] = {"reward": reward[:n].tolist(), "grad_norm": grad[:n].tolist(),
                                 "corr": float(np.corrcoef(reward[:n], grad[:n])[0, 1]) if n > 2 else None}
    window = "/".join(sorted({str(fitted_window(s, k, 5)) for s in runs.values() for k in ("reward/mean", "grad/norm")}))
    axes[0, 0].set(xlabel=f"mean reward ({window}-step average)", ylabel=f"pre-clip grad norm ({window}-step average)",
                   title="(a) grad norm vs reward")
    set_log(axes[0, 0])
    ax = axes[0, 1]
    data["efficiency"] = plot_metric(ax, runs, EFF, "||grad|| / (½ AdvRange), 5-step average", 5, palette=palette)
    data["efficiency_applied"] = plot_metric(ax, runs, APPLIED_EFF, "||grad|| / (½ AdvRange), 5-step average", 5,
                                             style="--", suffix=" applied", palette=palette)
    for lo, hi in PAPER.values():
        ax.axhspan(lo, hi, color="0.85", zorder=0)
    set_log(ax)
    ax.set(title="(b) response efficiency: pre-clip (solid),\napplied (dashed); grey: the paper's levels")
    data["ratio"] = {"pre_clip": ratio_verdict(runs, EFF), "applied": ratio_verdict(runs, APPLIED_EFF)}
    objective_legend(ax, palette, fontsize=7)                # both panels' colours; line styles in (b)'s title
    fig.suptitle(f"Gradient saturation at model scale (cpu-tiny LM, {band_note(runs, [EFF])})", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": repo_relative(directory), "paper": PAPER})


if __name__ == "__main__":
    main()
