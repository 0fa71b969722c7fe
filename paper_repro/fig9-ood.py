"""Fig 9: greedy validation accuracy in distribution and out of distribution vs RL steps, from the SFT policy
before the first update; "Did RL learn?" as the paired change from that pre-RL point."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.runs import (
    band_note,
    compare_dir,
    curve,
    exp2_dir,
    load,
    metric_range,
    pre_rl,
)
from opo_theory.figures.style import colors, new_figure, objective_legend, save_figure
from opo_theory.io import repo_relative
from opo_theory.stats import change, mean_ci95

NAME = "fig9-ood"
PANELS = (("val/accuracy", "greedy accuracy, held-out train level"), ("val/ood_accuracy", "greedy accuracy, OOD level"))


def learned(before: list, seed_rows: list[list[dict]], key: str) -> dict:
    """"Did RL learn?": the paired change of ``key`` from the pre-RL policy to each seed's last evaluation."""
    last = [[r[key] for r in rows if r.get(key) is not None][-1] for rows in seed_rows]
    return change(before, last, f"{key}, pre-RL -> last evaluation")


def learned_in(directory) -> tuple[dict, dict]:
    """(learned() of greedy val accuracy for every objective of the runs in ``directory``, their pre-RL records)."""
    runs, start = load(directory), pre_rl(directory)
    return {name: {"val/accuracy": learned([r.get("val/accuracy") for r in start[name]], seed_rows, "val/accuracy")}
            for name, seed_rows in runs.items()}, start


def main(rerun: bool = False):
    directory = exp2_dir(rerun)
    runs, start = load(directory), pre_rl(directory)
    palette = colors(list(runs))
    fig, axes = new_figure(len(PANELS), 1, layout="constrained")
    data = {"pre_rl": start, "learned": {}, "learned_runs": repo_relative(directory)}
    main_dir = compare_dir(rerun)
    if main_dir != directory:         # the main comparison's own answer, labelled with its runs
        data["learned_main"], data["pre_rl_main"] = learned_in(main_dir)
        data["learned_main_runs"] = repo_relative(main_dir)
    for ax, (key, ylabel) in zip(axes[0], PANELS, strict=True):
        data[key] = {}
        for name, seed_rows in runs.items():
            steps, mean, lo, hi = curve(seed_rows, key)
            x, lo, hi = steps + 1, *np.clip([lo, hi], *metric_range(key))   # row `step` s: s + 1 updates done
            before = [r.get(key) for r in start[name]]
            if all(b is not None for b in before):        # runs without a pre-RL OOD value start at step 1
                m0, h0 = mean_ci95(before)
                h0 = 0.0 if np.isnan(h0) else h0
                x, mean = np.r_[0, x], np.r_[m0, mean]
                lo, hi = np.r_[max(m0 - h0, 0.0), lo], np.r_[min(m0 + h0, 1.0), hi]
            ax.plot(x, mean, color=palette[name], label=name, marker=".")
            ax.fill_between(x, lo, hi, color=palette[name], alpha=0.15, lw=0)
            data[key][name] = {"step": x.tolist(), "mean": mean.tolist(), "low": lo.tolist(), "high": hi.tolist()}
            data["learned"].setdefault(name, {})[key] = learned(before, seed_rows, key)
        ax.set(xlabel="RL steps completed (0 = SFT policy before RL)", ylabel=ylabel)
    objective_legend(axes[0, -1], palette, fontsize=7)
    fig.suptitle(f"Validation accuracy from the pre-RL policy (cpu-tiny LM, {band_note(runs, ['val/accuracy'])})",
                 fontsize=9)
    return save_figure(fig, NAME, data, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
