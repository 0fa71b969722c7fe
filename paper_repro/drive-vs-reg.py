"""Drive vs regularizer: the OPO gradient split over training, next to every objective's total norm."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.runs import compare_dir, load, plot_metric, set_log
from opo_theory.figures.style import (
    clip_outlying_bands,
    colors,
    legend_outside,
    new_figure,
    save_figure,
)
from opo_theory.io import repo_relative

NAME = "drive-vs-reg"


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    fig, axes = new_figure(3, 1, layout="constrained")
    parts = {"grad/norm_drive": ("opo drive", "-"), "grad/norm_reg": ("opo chi² penalty", ":")}
    palette = colors([label for label, _ in parts.values()])      # two distinct colours, not one per call
    data = {"opo_split": {k: plot_metric(axes[0, 0], {label: runs["opo"]}, k, "OPO grad norm part (log)", smooth=5,
                                         clip=(0, np.inf), style=ls, palette=palette)
                          for k, (label, ls) in parts.items()}}
    set_log(axes[0, 0])          # one seed's spike stretches the band: a linear axis squashed the curves
    data["cos"] = plot_metric(axes[0, 1], {"opo": runs["opo"]}, "grad/cos_drive_reg", "cos(drive grad, penalty grad)", smooth=5, clip=(-1, 1))
    data["grad/norm"] = plot_metric(axes[0, 2], runs, "grad/norm", "total pre-clip grad norm", smooth=5, clip=(1e-2, np.inf))
    axes[0, 2].set_yscale("log")
    data["cut_band_ends"] = {title: clip_outlying_bands(axes[0, i]) for i, title in ((0, "split"), (2, "grad/norm"))}
    legend_outside(axes[0, 0], fontsize=7)
    legend_outside(axes[0, 2], fontsize=7)
    fig.suptitle("Gradient split into drive and chi² penalty (cpu-tiny LM, 5-step average, mean and 95% band over "
                 "seeds; log axes for the norms; a band's outlying end, one seed's spike, is cut and marked)", fontsize=9)
    return save_figure(fig, NAME, data, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
