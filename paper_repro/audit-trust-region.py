"""Audit: the trust region taken over K updates from the SFT policy per objective (max|Delta|, E[Delta³], pre-clip
gradient norm vs the applied update ||theta_k - theta_k-1||, surrogate-vs-exact and drive/penalty cosines)."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.audit_source import audit_record
from opo_theory.figures.style import colors, new_figure, objective_legend, save_figure
from opo_theory.io import repo_relative
from opo_theory.lm.experiments.audit import per_update_series

NAME = "audit-trust-region"
PANELS = (("delta/abs_max", "max|Delta| after update k", True), ("delta/m3", "E[Delta³] after update k", False),
          ("approx/loss_gap", "L_exact - L_surrogate after update k", False),
          ("grad/norm", "pre-clip grad norm at update k", True),
          ("grad/update_norm", "applied ||theta_k - theta_k-1||", True),
          ("approx/grad_cos", "cos(surrogate grad, exact grad)", False),
          ("grad/cos_drive_reg", "cos(drive grad, penalty grad)", False),
          ("clip_zero", "share of tokens (A != 0) with dL/dlogp = 0", False))


def main(rerun: bool = False):
    record, directory = audit_record(rerun)
    summary = record["summary"]
    palette = colors(list(summary))
    fig, axes = new_figure(4, 2, width=3.8, height=2.9, layout="constrained")
    data = {}
    for ax, (key, label, log) in zip(axes.flat, PANELS, strict=True):
        data[key] = {}
        for name, s in summary.items():
            iv = per_update_series(s, key)
            mean = np.array([np.nan if v["mean"] is None else v["mean"] for v in iv], dtype=float)
            if not np.isfinite(mean).any():
                continue
            lo = np.array([np.nan if v["low"] is None else v["low"] for v in iv], dtype=float)
            hi = np.array([np.nan if v["high"] is None else v["high"] for v in iv], dtype=float)
            k = np.arange(1, len(iv) + 1)
            ax.plot(k, mean, color=palette[name], marker="o", ms=2.5, label=name)
            ax.fill_between(k, np.where(np.isfinite(lo), lo, mean), np.where(np.isfinite(hi), hi, mean),
                            color=palette[name], alpha=0.15, lw=0)
            data[key][name] = iv
        if log and ax.get_lines():
            ax.set_yscale("log")
        ax.set(title=label, xlabel="update k from the anchor" if ax in axes[1] else "")
        ax.title.set_fontsize(8)
    axes[0, 0].axhline(1.0, color="k", lw=0.8, ls=":")
    objective_legend(axes[0, -1], {n: palette[n] for n in summary}, fontsize=7)   # beside the panels, not on (e)
    fig.suptitle(f"Trust region over K updates per objective ({record['settings']['seeds']} rollout seeds, "
                 "95% intervals; log-space for sizes; grad_clip "
                 f"{record['settings']['config']['grad_clip']}, lr {record['settings']['config']['lr']})", fontsize=9)
    config = {"audit": repo_relative(directory), "settings": {k2: v for k2, v in record["settings"].items()
                                                                if k2 != "config"}}
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
