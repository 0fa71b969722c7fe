"""Toy check: gradient dynamics of OPO vs DPO (and KL-PG, GRPO) on identical sampled bandit data, grad norm per step."""

from __future__ import annotations

import inspect

from opo_theory.bandit.experiments import dynamics
from opo_theory.figures.style import colors, new_figure, save_figure

NAME = "bandit-dynamics"
UPDATES = 2     # >= 2 updates per sampled batch, so OPO's chi² penalty (zero gradient at the anchor) acts


def main(rerun: bool = False):
    kwargs = {}
    takes = inspect.signature(dynamics).parameters
    if "updates" in takes:                  # the experiment's updates-per-batch setting, when it has one
        kwargs["updates"] = UPDATES
    result = dynamics(**kwargs)
    updates = kwargs.get("updates", 1)      # without the setting, the experiment takes one step per batch
    palette = colors(list(result["curves"]))
    fig, axes = new_figure(2, 1, layout="constrained")   # the suptitle touched the panel titles
    for name, c in result["curves"].items():
        axes[0, 0].plot(range(1, len(c["grad_norm"]) + 1), c["grad_norm"], color=palette[name], label=name)
        axes[0, 1].plot(range(len(c["regret"])), c["regret"], color=palette[name], label=name)
    axes[0, 0].set(xlabel="step", ylabel="grad norm (mean over bandits)", yscale="log", title="(a) grad norm per step")
    axes[0, 1].set(xlabel="step", ylabel="regret (mean over bandits)", yscale="log", title="(b) regret")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"OPO vs DPO on identical sampled data ({result['config']['arms']}-armed bandits, "
                 f"{result['config']['seeds']} seeds, {updates} update(s) per batch)", fontsize=9)
    data = {"summary": result["summary"], "curves": result["curves"], "updates_per_batch": updates}
    return save_figure(fig, NAME, data, {**result["config"], "updates_per_batch": updates})


if __name__ == "__main__":
    main()
