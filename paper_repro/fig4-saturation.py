"""Fig 4: binary-logit toy saturation, in the paper's coordinate (Delta) and in the logit, with OPO's logit split."""

from __future__ import annotations

import numpy as np

from opo_theory.bandit.experiments import saturation
from opo_theory.figures.style import color, new_figure, save_figure

NAME = "fig4-saturation"
SHOWN = ("sft", "dpo(beta=1)", "grpo", "dapo", "gspo", "ppo-kl", "ipo", "gopo", "opo", "opo-exact")


def main(rerun: bool = False):
    res = saturation()
    p = np.array(res["p"])
    fig, axes = new_figure(3, 1, width=4.3, height=3.4)
    for name in SHOWN:
        c = res["curves"][name]
        base = name.split("(")[0]
        axes[0, 0].plot(p, c["delta"], color=color(base), label=name)
        axes[0, 1].semilogy(1 - p[1:], np.maximum(c["logit"][1:], 1e-18), color=color(base), label=name)
    axes[0, 0].set(xlabel="p = sigma(z)", ylabel="|dL/dDelta| (chosen response)",
                   title="(a) paper's coordinate: log-ratio Delta", ylim=(0, 2.0))
    ax = axes[0, 1]
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set(xlabel="1 - p (log scale, confidence grows to the right)", ylabel="|dL/dz|",
           title="(b) parameter coordinate: logit z\n(exact zeros drawn at 1e-18)")
    opo = res["curves"]["opo"]
    q = 1 - p[1:]
    for key, style in (("logit_drive", "--"), ("logit_reg", ":"), ("logit_signed", "-")):
        axes[0, 2].plot(q, np.array(opo[key][1:]), style, color=color("opo"), label=key.replace("logit_", ""))
    axes[0, 2].set_xscale("log")
    axes[0, 2].invert_xaxis()
    axes[0, 2].set(xlabel="1 - p", ylabel="signed dL/dz (OPO)", title="(c) OPO in the logit: drive vs penalty")
    axes[0, 0].legend(ncol=2, fontsize=6.5)
    axes[0, 2].legend()
    fig.suptitle("Toy saturation (z_ref = 0, rewards (1, 0), two equally likely responses per logit)", y=1.02)
    data = {"p": res["p"], "curves": {n: res["curves"][n] for n in SHOWN}, "drop_p": res["drop_p"],
            "summary": res["summary"]}
    return save_figure(fig, NAME, data, res["config"])


if __name__ == "__main__":
    main()
