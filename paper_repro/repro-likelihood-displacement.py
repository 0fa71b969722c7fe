"""Reproduction (Razin et al. 2024): single-token likelihood displacement under DPO-style losses, and OPO/GOPO's quadratic ratio penalty."""

from __future__ import annotations

from opo_theory.figures.style import colors, legend_outside, new_figure, save_figure
from opo_theory.reproductions.displacement import displacement

NAME = "repro-likelihood-displacement"
INNER_STYLES = {"30": "--", "1000": ":"}      # re-anchored every 30 / 1000 steps; solid: fixed reference
FAMILIES = ("dpo", "ipo", "chipo", "opo", "gopo")      # drawing order (the JSON's keys come back sorted by name)


def ordered(labels) -> list[str]:
    """Fixed-reference runs first, by FAMILIES, then the re-anchored ones by family and period."""
    def key(label):
        base, _, inner = label.partition("-reanchor-")
        return bool(inner), FAMILIES.index(base) if base in FAMILIES else len(FAMILIES), int(inner or 0), label
    return sorted(labels, key=key)


def main(rerun: bool = False):
    res = displacement()
    return draw({"designed": res["designed"], "random": res["random"], "steps_recorded": res["steps_recorded"],
                 "n_random": res["config"]["n_random"]}, res["config"])


def draw(data: dict, config: dict):
    """The figure from the run's numbers (``main``'s, or the committed JSON's: a redraw needs no rerun)."""
    steps, d = data["steps_recorded"], data["designed"]
    palette = colors([label.split("-reanchor")[0] for label in d["curves"]])
    fig, axes = new_figure(3, 1, width=4.3, height=3.5, layout="constrained")
    for label in ordered(d["curves"]):
        c = d["curves"][label]
        base, _, inner = label.partition("-reanchor-")
        style = dict(color=palette[base], ls=INNER_STYLES.get(inner, "-"), label=label)
        axes[0, 0].semilogy(steps, c["preferred"], **style)
        axes[0, 1].plot(steps, c["aligned"], **style)
    ref = d["final"]["dpo"]["reference_preferred"]
    axes[0, 0].axhline(ref, color="grey", ls=":", lw=1, label="pi_ref(y+)")
    axes[0, 0].set(xlabel="gradient step on h", ylabel="pi(y+)  ('No')")
    axes[0, 0].set_title("(a) preferred token\n(dashed/dotted: re-anchored)", fontsize=9)
    axes[0, 1].set(xlabel="gradient step on h", ylabel="pi(z)  ('Yes')")
    axes[0, 1].set_title("(b) token aligned with W+ - W-", fontsize=9)
    legend_outside(axes[0, 1], handles=axes[0, 0].get_legend_handles_labels()[0], fontsize=7)   # (a) and (b)'s
    r = data["random"]
    names = ordered(n for n in r if isinstance(r[n], dict))
    x = range(len(names))
    axes[0, 2].bar([i - 0.2 for i in x], [r[n]["first_step_displacing"] for n in names], 0.4, label="first step")
    axes[0, 2].bar([i + 0.2 for i in x], [r[n]["final_displaced"] for n in names], 0.4, label="end of training")
    axes[0, 2].set_xticks(list(x), names, rotation=45, ha="right", fontsize=7)
    axes[0, 2].set(ylabel="share of instances with pi(y+) < pi_ref(y+)")
    axes[0, 2].set_title(f"(c) {config['n_random']} random instances", fontsize=9)
    axes[0, 2].legend(fontsize=7)
    fig.suptitle("Likelihood displacement, single token: pi = softmax(W h), h trained, one preference y+ > y-", fontsize=9)
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
