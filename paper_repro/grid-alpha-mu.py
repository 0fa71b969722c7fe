"""alpha–mu grid on a 20-armed bandit: function- and parameter-space rates, final reward, variance shares; the
surrogate (opo, the figure) and the exact form (opo-exact, its summary), whose optimum is the target v* itself."""

from __future__ import annotations

import numpy as np

from opo_theory.bandit.experiments import grid
from opo_theory.claims.toy import judge_grid
from opo_theory.figures.style import new_figure, save_figure, text_color, wrap_title

NAME = "grid-alpha-mu"
SHARE_COLORS = {"alpha": "#0072b2", "mu": "#e69f00"}     # Okabe-Ito blue / orange: told apart under colour blindness


def heatmap(ax, values, alphas, mus, title, fmt):
    """One value per (alpha, mu) cell, printed in black or white, whichever reads on the cell's colour."""
    values = np.array(values, dtype=float)
    im = ax.imshow(values, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(mus)), [str(m) for m in mus])
    ax.set_yticks(range(len(alphas)), [str(a) for a in alphas])
    ax.set(xlabel="mu", ylabel="alpha")
    ax.set_title(title, fontsize=8)
    ax.grid(False)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, format(values[i, j], fmt), ha="center", va="center", fontsize=8,
                    color=text_color(im.cmap(im.norm(values[i, j]))))
    return im


def shares_panel(ax, by_inner):
    """alpha and mu shares of the logit-rate and final-reward variance per inner-steps setting (95% CI)."""
    inners = sorted(by_inner, key=int)      # the JSON's keys are strings, sorted as text
    x = np.arange(len(inners))
    bars = (("param_rate", "alpha", ""), ("param_rate", "mu", ""), ("final_reward", "alpha", "//"),
            ("final_reward", "mu", "//"))
    for k, (metric, key, hatch) in enumerate(bars):
        vals = np.array([by_inner[n][metric][f"{key}_share"] for n in inners])
        ci = np.array([by_inner[n][metric][f"{key}_ci95"] for n in inners])
        ax.bar(x + (k - 1.5) * 0.2, vals, 0.2, yerr=[np.maximum(vals - ci[:, 0], 0), np.maximum(ci[:, 1] - vals, 0)],
               color=SHARE_COLORS[key], hatch=hatch, edgecolor="k", lw=0.4, capsize=2,
               label=f"{key} share of {'logit rate' if metric == 'param_rate' else 'final reward'}")
    ax.set_xticks(x, [f"{n} inner" for n in inners])
    ax.set(ylim=(0, 1.05), ylabel="share of variance")
    ax.set_title("variance shares vs inner steps\nper outer iteration (95% CI)", fontsize=8)
    ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def main(rerun: bool = False):
    res = judge_grid(grid(seeds=32, inner_sweep=(5, 50, 300)))
    exact = judge_grid(grid(seeds=32, inner_sweep=(5, 50, 300), objective="opo-exact"))     # no surrogate offset to v*
    data = {k: v for k, v in res.items() if k != "config"}
    data["exact"] = {"summary": exact["summary"], "by_inner": exact["by_inner"],
                     "param_rate_first_outer": exact["param_rate_first_outer"], "final_reward": exact["final_reward"]}
    data.update(seeds=res["config"]["seeds"], arms=res["config"]["arms"])
    return draw(data, res["config"])


def draw(data: dict, config: dict):
    """The figure from the grid's numbers (``main``'s, or the committed JSON's: a redraw needs no rerun)."""
    a, m = config["alphas"], config["mus"]
    fig, axes = new_figure(4, 1, width=3.4, height=3.6, layout="constrained")
    heatmap(axes[0, 0], data["function_rate"], a, m, "function-space rate |1 - eta mu|\n(alpha-free by construction)",
            ".3f")
    heatmap(axes[0, 1], data["param_rate_first_outer"], a, m,
            f"logit-space rate per step, first outer\niteration, {config['inner']} inner steps", ".4f")
    heatmap(axes[0, 2], data["final_reward"], a, m, f"expected reward after {config['outer']}\nouter x "
            f"{config['inner']} inner steps", ".3f")
    shares_panel(axes[0, 3], data["by_inner"])
    s, e = data["summary"], data["exact"]["summary"]
    spread = ", ".join(f"{n} inner {v['max_cell_std']['final_reward']:.3f}" for n, v in sorted(data["by_inner"].items(), key=lambda kv: int(kv[0])))
    fig.suptitle(wrap_title(
        f"Claim: {s['statement']} ({config['arms']}-armed bandit, {config['seeds']} seeds). Rule: {s['rule']}. "
        f"Surrogate (opo): holds for inner steps {s['holds_for_inner']} of {config['inner_sweep']}, {s['verdict']}; "
        f"exact form (opo-exact): holds for {e['holds_for_inner']}, {e['verdict']}. Largest per-cell std of the "
        f"final reward over seeds: {spread}.", fig), fontsize=8)
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
