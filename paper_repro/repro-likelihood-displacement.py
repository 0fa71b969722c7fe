"""Reproduction (Razin et al. 2024): single-token likelihood displacement under DPO-style losses, and OPO/GOPO's quadratic ratio penalty."""

from __future__ import annotations

from opo_theory.figures.style import colors, new_figure, save_figure
from opo_theory.reproductions.displacement import displacement

NAME = "repro-likelihood-displacement"
INNER_STYLES = {"30": "--", "1000": ":"}      # re-anchored every 30 / 1000 steps; solid: fixed reference


def main(rerun: bool = False):
    res = displacement()
    steps, d = res["steps_recorded"], res["designed"]
    palette = colors([label.split("-reanchor")[0] for label in d["curves"]])
    fig, axes = new_figure(3, 1, width=4.3, height=3.5, layout="constrained")
    for label, c in d["curves"].items():
        base, _, inner = label.partition("-reanchor-")
        style = dict(color=palette[base], ls=INNER_STYLES.get(inner, "-"), label=label)
        axes[0, 0].semilogy(steps, c["preferred"], **style)
        axes[0, 1].plot(steps, c["aligned"], **style)
    ref = d["final"]["dpo"]["reference_preferred"]
    axes[0, 0].axhline(ref, color="grey", ls=":", lw=1, label="pi_ref(y+)")
    axes[0, 0].set(xlabel="gradient step on h", ylabel="pi(y+)  ('No')", title="(a) preferred token (dashed/dotted: re-anchored)")
    axes[0, 1].set(xlabel="gradient step on h", ylabel="pi(z)  ('Yes')", title="(b) token aligned with W+ - W-")
    axes[0, 0].legend(fontsize=6)
    r = res["random"]
    names = [n for n in r if isinstance(r[n], dict)]
    x = range(len(names))
    axes[0, 2].bar([i - 0.2 for i in x], [r[n]["first_step_displacing"] for n in names], 0.4, label="first step")
    axes[0, 2].bar([i + 0.2 for i in x], [r[n]["final_displaced"] for n in names], 0.4, label="end of training")
    axes[0, 2].set_xticks(list(x), names, rotation=45, ha="right", fontsize=7)
    axes[0, 2].set(ylabel="share of instances with pi(y+) < pi_ref(y+)",
                   title=f"(c) {res['config']['n_random']} random instances")
    axes[0, 2].legend(fontsize=7)
    fig.suptitle("Likelihood displacement, single token: pi = softmax(W h), h trained, one preference y+ > y-", fontsize=9)
    return save_figure(fig, NAME, {"designed": d, "random": r, "steps_recorded": steps,
                                    "n_random": res["config"]["n_random"]}, res["config"])


if __name__ == "__main__":
    main()
