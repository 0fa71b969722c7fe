"""Fig 7: (a) gradient norm vs mean reward, (b) gradient response efficiency ||grad|| / (½ AdvRange) vs step."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.runs import compare_dir, curve, load, plot_metric
from opo_theory.figures.style import color, new_figure, save_figure
from opo_theory.io import repo_relative

NAME = "fig7-saturation"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(2, 1)
    data = {"scatter": {}}
    for name, seed_rows in runs.items():
        _, reward, _, _ = curve(seed_rows, "reward/mean", smooth=5)
        _, grad, _, _ = curve(seed_rows, "grad/norm", smooth=5)
        n = min(len(reward), len(grad))
        axes[0, 0].scatter(reward[:n], grad[:n], s=6, color=color(name), label=name, alpha=0.7)
        data["scatter"][name] = {"reward": reward[:n].tolist(), "grad_norm": grad[:n].tolist(),
                                 "corr": float(np.corrcoef(reward[:n], grad[:n])[0, 1]) if n > 2 else None}
    axes[0, 0].set(xlabel="mean reward (5-step average)", ylabel="grad norm (5-step average)", yscale="log",
                   title="(a) grad norm vs reward")
    data["efficiency"] = plot_metric(axes[0, 1], runs, "grad/response_efficiency", "||grad|| / (½ AdvRange)", smooth=5, clip=(1e-2, np.inf))
    axes[0, 1].set(yscale="log", title="(b) gradient response efficiency")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Gradient saturation at model scale (cpu-tiny LM, mean over seeds)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
