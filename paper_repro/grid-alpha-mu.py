"""alpha–mu grid on a 20-armed bandit: function- and parameter-space rates, final reward, variance shares."""

from __future__ import annotations

import numpy as np

from opo_theory.bandit.experiments import grid
from opo_theory.figures.style import new_figure, save_figure

NAME = "grid-alpha-mu"


def heatmap(ax, values, alphas, mus, title, fmt):
    values = np.array(values)
    im = ax.imshow(values, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(mus)), [str(m) for m in mus])
    ax.set_yticks(range(len(alphas)), [str(a) for a in alphas])
    ax.set(xlabel="mu", ylabel="alpha", title=title)
    ax.grid(False)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", color="w", fontsize=8)
    return im


def main(rerun: bool = False):
    res = grid(seeds=32)
    a, m = res["config"]["alphas"], res["config"]["mus"]
    fig, axes = new_figure(3, 1, width=3.6, height=3.2)
    heatmap(axes[0, 0], res["function_rate"], a, m, "function-space rate\n(= |1 - eta mu|)", ".3f")
    heatmap(axes[0, 1], res["param_rate_first_outer"], a, m, "logit-space rate per step\n(first outer iteration)", ".4f")
    heatmap(axes[0, 2], res["final_reward"], a, m, f"expected reward after {res['config']['outer']} outer steps", ".3f")
    ind = res["independence"]
    fig.suptitle(f"variance share of logit rate: mu {ind['param_rate']['mu_share']:.3f}, alpha "
                 f"{ind['param_rate']['alpha_share']:.1e};  of final reward: alpha {ind['final_reward']['alpha_share']:.2f} "
                 f"(95% CI {ind['final_reward']['alpha_ci95'][0]:.2f}-{ind['final_reward']['alpha_ci95'][1]:.2f}), "
                 f"mu {ind['final_reward']['mu_share']:.3f}", fontsize=8, y=1.04)
    return save_figure(fig, NAME, {k: v for k, v in res.items() if k != "config"}, res["config"])


if __name__ == "__main__":
    main()
