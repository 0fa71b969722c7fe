"""Exact vs surrogate OPO as the trust region grows: E[Delta³], loss gap, gradient cosine, Lemma A.1."""

from __future__ import annotations

import numpy as np

from opo_theory.bandit.experiments import approx
from opo_theory.figures.style import legend_outside, new_figure, save_figure

NAME = "approx-delta3"


def main(rerun: bool = False):
    res = approx()
    rows = res["rows"]
    fig, axes = new_figure(4, 1, width=3.6, height=3.2, layout="constrained")
    for inner in res["config"]["inner_steps"]:
        sel = [r for r in rows if r["inner"] == inner]
        eta = np.array([r["eta"] for r in sel])
        e3 = np.array([r["E_delta3"] for r in sel])
        line, = axes[0, 0].loglog(eta, np.maximum(np.abs(e3), 1e-12), "-", label=f"{inner} inner steps")
        pos = e3 > 0                                   # filled: E[Delta³] > 0, open: < 0
        axes[0, 0].plot(eta[pos], np.abs(e3[pos]), "o", color=line.get_color())
        axes[0, 0].plot(eta[~pos], np.maximum(np.abs(e3[~pos]), 1e-12), "o", mfc="none", color=line.get_color())
        axes[0, 1].loglog(eta, [max(abs(r["loss_gap"]), 1e-12) for r in sel], "o-", color=line.get_color())
        axes[0, 2].semilogx(eta, [r["grad_cos"] for r in sel], "o-", color=line.get_color())
        axes[0, 3].loglog(eta, [r["delta_inf"] for r in sel], "o-", color=line.get_color())
    axes[0, 0].axhline(0.1, color="k", ls="--", lw=1, label="recommended threshold 0.1")
    axes[0, 0].plot([], [], "ko", label="E[Delta³] > 0"); axes[0, 0].plot([], [], "ko", mfc="none", label="E[Delta³] < 0")
    axes[0, 0].set(xlabel="step size eta", ylabel="|E[Delta³]| (marker: sign)", title="third moment of the log-ratio")
    axes[0, 3].axhline(1.0, color="k", ls="--", lw=1, label="Lemma A.1 needs max|Delta| < 1")
    axes[0, 3].set(xlabel="step size eta", ylabel="max |Delta| over arms and seeds", title="largest log-ratio")
    axes[0, 1].set(xlabel="step size eta", ylabel="|exact - surrogate| loss", title="loss gap")
    axes[0, 2].set(xlabel="step size eta", ylabel="cos(grad exact, grad surrogate)", title="gradient agreement",
                   ylim=(-0.1, 1.05))
    handles = axes[0, 0].get_legend_handles_labels()[0] + axes[0, 3].get_legend_handles_labels()[0]
    legend_outside(axes[0, 3], handles=handles, fontsize=7)     # one legend for all panels, beside the last
    held = [r for r in rows if r["lemma_tightness"] is not None]
    data = {"rows": rows, "first_above_0.1": res["first_above_0.1"],
            "E_delta3_sign": {"positive": int(sum(r["E_delta3"] > 0 for r in rows)),
                              "negative": int(sum(r["E_delta3"] < 0 for r in rows))},
            "rows_outside_lemma_domain": int(sum(r["delta_inf"] >= 1 for r in rows)),
            "lemma_rows": len(held), "lemma_max_tightness": float(np.max([r["lemma_tightness"] for r in held])) if held else None}
    return save_figure(fig, NAME, data, res["config"])


if __name__ == "__main__":
    main()
