"""Fig 9: validation accuracy in distribution and out of distribution vs step."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, load, plot_metric
from opo_theory.figures.style import new_figure, save_figure

NAME = "fig9-ood"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(2, 1)
    data = {}
    data["val/accuracy"] = plot_metric(axes[0, 0], runs, "val/accuracy", "greedy accuracy, held-out train level")
    data["val/ood_accuracy"] = plot_metric(axes[0, 1], runs, "val/ood_accuracy", "greedy accuracy, OOD level")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Validation accuracy (cpu-tiny LM, mean and 95% band over seeds)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": str(directory)})


if __name__ == "__main__":
    main()
