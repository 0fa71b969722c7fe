"""Reproduction (Azar et al. 2023): IPO's bandit with deterministic preferences; DPO drives pi(y_3) to 0, IPO stays anchored."""

from __future__ import annotations

from opo_theory.figures.style import color, new_figure, save_figure
from opo_theory.reproductions.ipo_bandit import ipo_bandit

NAME = "repro-ipo-bandit"
FLOOR = 1e-30          # the log axis cannot show 0


def main(rerun: bool = False):
    res = ipo_bandit()
    steps = res["steps_recorded"]
    fig, axes = new_figure(3, 1, width=4.0, height=3.2, layout="constrained")
    betas = res["config"]["betas"]
    styles = dict(zip(map(str, betas), ("-", "--", "-.", ":")))
    for name in ("dpo", "ipo"):
        for b, curve in res["curves"][name].items():
            axes[0, 0].semilogy(steps, [max(p[2], FLOOR) for p in curve], color=color(name), ls=styles.get(b, "-"),
                                label=f"{name} beta={b}")
    axes[0, 0].set(xlabel="Adam step", ylabel="pi(y_3) (dispreferred)", title="(a) mass on the worst action")
    axes[0, 0].legend(fontsize=6)
    x = range(len(betas))
    for j, label in enumerate(("y_1", "y_2", "y_3")):
        axes[0, 1].plot(x, [res["final"]["ipo"][str(b)][j] for b in betas], "o-", label=f"ipo {label}")
        axes[0, 1].plot(x, [res["ipo_closed_form"][str(b)][j] for b in betas], "k+", ms=9)
    axes[0, 1].axhline(1 / 3, color="grey", ls=":", lw=1, label="pi_ref")
    axes[0, 1].set(xticks=list(x), xticklabels=[str(b) for b in betas], xlabel="beta (IPO's tau)",
                   ylabel="final pi", title="(b) IPO final policy (+: closed form)")
    axes[0, 1].legend(fontsize=6)
    s = res["summary"]
    axes[0, 2].plot(x, [s["dpo_tv_to_ref"][str(b)] for b in betas], "o-", color=color("dpo"), label="dpo")
    axes[0, 2].plot(x, [s["ipo_tv_to_ref"][str(b)] for b in betas], "o-", color=color("ipo"), label="ipo")
    axes[0, 2].axhline(2 / 3, color="grey", ls=":", lw=1, label="deterministic policy")
    axes[0, 2].set(xticks=list(x), xticklabels=[str(b) for b in betas], xlabel="beta",
                   ylabel="TV(pi, pi_ref)", title="(c) distance to the reference")
    axes[0, 2].legend(fontsize=7)
    fig.suptitle("IPO's illustrative bandit: y_1 > y_2 > y_3, every pair observed, uniform reference", fontsize=9)
    return save_figure(fig, NAME, {k: res[k] for k in ("final", "ipo_closed_form", "summary", "curves",
                                                       "steps_recorded")}, res["config"])


if __name__ == "__main__":
    main()
