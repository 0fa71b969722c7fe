"""Fig 8: policy entropy vs step (LM compare runs)."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, load, plot_metric
from opo_theory.figures.style import new_figure, save_figure

NAME = "fig8-entropy"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(1, 1)
    data = {}
    data["entropy/mean"] = plot_metric(axes[0, 0], runs, "entropy/mean", "mean token entropy (5-step average)", smooth=5)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Entropy (cpu-tiny LM, mean and 95% band over seeds)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": str(directory)})


if __name__ == "__main__":
    main()
