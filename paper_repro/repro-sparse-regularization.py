"""Reproduction (Lee et al. 2018, sparse MDPs): regularisation error of sparse (Tsallis/chi²) vs softmax (KL) optima as |A| grows."""

from __future__ import annotations

from opo_theory.figures.style import CYCLE, legend_outside, new_figure, save_figure
from opo_theory.reproductions.sparse import sparse_vs_softmax

NAME = "repro-sparse-regularization"
SHOWN = {"softmax": ("softmax (KL / Shannon) at alpha", CYCLE[0], "soft_bound"),
         "sparse": ("sparse (Tsallis at alpha\n= chi² at mu = alpha/|A|)", CYCLE[3], "sparse_bound"),
         "chi2_fixed_mu": ("chi² at fixed mu = alpha", CYCLE[4], "chi2_fixed_mu_bound")}


def main(rerun: bool = False):
    res = sparse_vs_softmax()
    rows, alpha = res["rows"], res["config"]["alpha"]
    k = [r["actions"] for r in rows]
    fig, axes = new_figure(2, 1, width=4.4, height=3.4, layout="constrained")
    for name, (label, c, bound) in SHOWN.items():
        axes[0, 0].semilogx(k, [r[name]["worst"] for r in rows], "o-", color=c, label=label, base=2)
        axes[0, 0].semilogx(k, [min(r[bound], 1.0) for r in rows], ":", color=c, base=2)
        axes[0, 1].semilogx(k, [r[name]["random_mean"] for r in rows], "o-", color=c, label=label, base=2)
    axes[0, 0].set(xlabel="|A| (number of actions)", ylabel="max r - E_pi[r]",
                   title=f"(a) worst two-level instance, alpha = {alpha}\n(dotted: published bound)")
    axes[0, 1].set(xlabel="|A|", ylabel="max r - E_pi[r]", title="(b) mean over uniform [0, 1] rewards")
    axes[0, 1].plot([], [], "k:", label="published bound (a)")
    legend_outside(axes[0, 1], fontsize=7)           # it covered (a)'s chi² curve and bounds
    fig.suptitle("Regularisation error of the regularised optimum (bandit = sparse MDP with gamma = 0)", fontsize=9)
    return save_figure(fig, NAME, {"rows": rows, "summary": res["summary"], "alpha": alpha}, res["config"])


if __name__ == "__main__":
    main()
