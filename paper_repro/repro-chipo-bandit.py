"""Reproduction (Huang et al. 2024, chiPO): offline suboptimality vs number of preference samples, DPO vs chiPO at tuned beta."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.style import color, legend_outside, new_figure, save_figure
from opo_theory.reproductions.chipo_bandit import chipo_bandit

NAME = "repro-chipo-bandit"
FLOOR = 1e-4          # panel (a) draws smaller suboptimalities on this floor (their values are in the JSON)
SETTINGS = {"betas": (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0), "seeds": 24, "steps": 1000}


def main(rerun: bool = False):
    res = chipo_bandit(**SETTINGS)
    return draw({"table": res["table"], "summary": res["summary"]}, res["config"])


def draw(data: dict, config: dict):
    """The figure from the run's numbers (``main``'s, or the committed JSON's: a redraw needs no rerun)."""
    table, betas, ns = data["table"], config["betas"], config["ns"]
    fig, axes = new_figure(3, 1, width=4.0, height=3.3, layout="constrained")
    for m, rows in table.items():
        mean = [max(r["tuned_mean"], FLOOR) for r in rows]
        sem = [r["tuned_sem"] for r in rows]
        axes[0, 0].errorbar(ns, mean, yerr=sem, fmt="o-", color=color(m), label=f"{m} (tuned beta)", capsize=2)
    first = table["chipo"][0]["tuned_mean"]
    axes[0, 0].loglog(ns, [first * (ns[0] / n) ** 0.5 for n in ns], "k:", label="n^-1/2 (published rate)")
    axes[0, 0].set(xscale="log", yscale="log", xlabel="n (preference pairs)", ylabel="J(pi*) - J(pi_hat)",
                   ylim=(FLOOR / 2, 1.5))
    axes[0, 0].set_title("(a) tuned beta (mean ± s.e.;\n< 1e-4 drawn on the floor)", fontsize=9)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    from matplotlib import colormaps

    shades = colormaps["viridis"](np.linspace(0.0, 0.9, len(betas)))    # beta is ordered: dark = small, light = large
    for ax, m in ((axes[0, 1], "dpo"), (axes[0, 2], "chipo")):
        for i, b in enumerate(betas):
            ax.loglog(ns, [max(r["mean_by_beta"][i], 1e-6) for r in table[m]], "o-", ms=3, color=shades[i],
                      label=f"beta={b}")
        ax.set(xlabel="n", ylabel="J(pi*) - J(pi_hat)")
        ax.set_title(f"({'b' if m == 'dpo' else 'c'}) {m}, every beta", fontsize=9)
    legend_outside(axes[0, 2], fontsize=7)          # (b) and (c) share the beta colours
    fig.suptitle(f"chiPO's bandit (reconstruction): y* with pi_ref = 1/2, {config['rare']} rare bad actions, "
                 f"{config['seeds']} datasets per n, {config['steps']} Adam steps", fontsize=9)
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
