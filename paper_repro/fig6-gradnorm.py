"""Fig 6: pre-clip gradient norm vs step (LM compare runs)."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, load, plot_metric
from opo_theory.figures.style import new_figure, save_figure

NAME = "fig6-gradnorm"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(1, 1)
    data = {}
    data["grad/norm"] = plot_metric(axes[0, 0], runs, "grad/norm", "pre-clip grad norm (5-step average)", smooth=5)
    axes[0, 0].set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Gradient norm (cpu-tiny LM, mean and 95% band over seeds)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": str(directory)})


if __name__ == "__main__":
    main()
