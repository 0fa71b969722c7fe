"""Fig 5: training reward vs step for each objective (LM compare runs)."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, load, plot_metric
from opo_theory.figures.style import new_figure, save_figure

NAME = "fig5-reward"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(1, 1)
    data = {}
    data["reward/mean"] = plot_metric(axes[0, 0], runs, "reward/mean", "mean reward (5-step moving average)", smooth=5)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Training reward (cpu-tiny LM, mean and 95% band over seeds)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": str(directory)})


if __name__ == "__main__":
    main()
