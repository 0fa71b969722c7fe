"""Audit: where the gradient goes by the anchor's token confidence (share, relative |dL/dlogp|, logit-space size,
clip-zeroed share per bin), per objective, first and last of K updates from the SFT policy (cpu-tiny LM)."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.audit_source import audit_record
from opo_theory.figures.style import colors, new_figure, save_figure
from opo_theory.io import repo_relative
from opo_theory.lm.experiments.audit import mechanism_verdict
from opo_theory.lm.training.confidence import BIN_NAMES

NAME = "audit-confidence"
PANELS = (("grad_rel", "|dL/dlogp| / all-token mean", True),       # the loss's own scale divided out
          ("logit_abs", "|dL/dlogp| ||e_y - pi|| (logit)", True),
          ("clip_zero", "share with dL/dlogp = 0 (A != 0)", False))


def draw(ax, summary: dict, which: str, stat: str, palette: dict, log: bool) -> dict:
    """One line per objective over the bins: geometric (or arithmetic) mean over seeds with its 95% interval."""
    x = np.arange(len(BIN_NAMES))
    data = {}
    for i, (name, s) in enumerate(summary.items()):
        iv = [s["per_bin"][which]["all"][b][stat] for b in BIN_NAMES]
        mean = np.array([np.nan if v["mean"] is None else v["mean"] for v in iv], dtype=float)
        low = np.array([np.nan if v["low"] is None else v["low"] for v in iv], dtype=float)
        high = np.array([np.nan if v["high"] is None else v["high"] for v in iv], dtype=float)
        shift = (i - len(summary) / 2) * 0.04
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        ax.errorbar(x + shift, mean, yerr=err, color=palette[name], marker="o", ms=3, lw=1, capsize=2, label=name)
        data[name] = iv
    ax.set_xticks(x, [f"p {b}" for b in BIN_NAMES], rotation=20, fontsize=7)
    if log and any(np.isfinite(v["mean"] or np.nan) and (v["mean"] or 0) > 0 for d in data.values() for v in d):
        ax.set_yscale("log")
    return data


def main(rerun: bool = False):
    record, directory = audit_record(rerun)
    summary = record["summary"]
    palette = colors(list(summary))
    k = record["settings"]["updates"]
    fig, axes = new_figure(4, 2, width=4.2, height=3.4, layout="constrained")
    data = {"share": {}, "first": {}, "last": {}}
    any_obj = next(iter(summary.values()))
    x = np.arange(len(BIN_NAMES))
    for j, sign in enumerate(("all", "pos", "neg")):
        share = [any_obj["per_bin"]["first"][sign][b]["share"] for b in BIN_NAMES]
        axes[0, 0].bar(x + (j - 1) * 0.27, [v["mean"] or 0 for v in share], width=0.27, label=f"A {sign}")
        data["share"][sign] = share
    axes[0, 0].set_xticks(x, [f"p {b}" for b in BIN_NAMES], rotation=20, fontsize=7)
    axes[0, 0].set(title="(a) token share by p_old (same rollouts for all)", ylabel="share of tokens")
    axes[0, 0].legend(fontsize=6)
    axes[1, 0].axis("off")
    for row, which in enumerate(("first", "last")):
        for col, (stat, label, log) in enumerate(PANELS, start=1):
            ax = axes[row, col]
            data[which][stat] = draw(ax, summary, which, stat, palette, log)
            ax.set(title=f"({'bcd'[col - 1] if row == 0 else 'efg'[col - 1]}) {label}, update {1 if which == 'first' else k}")
            ax.title.set_fontsize(8)
    # the objectives' legend in the free slot under (a), where it covers no data (it sat on (b)'s error bars)
    axes[1, 0].legend(*axes[0, 1].get_legend_handles_labels(), loc="center", fontsize=7, title="objective",
                      ncol=1 + (len(summary) > 8))
    verdict = None if record.get("verdict") is None else mechanism_verdict(summary)   # None: no OPO or no baseline
    seeds = record["settings"]["seeds"]
    fig.suptitle(f"Confidence-resolved gradient audit, {seeds} rollout seeds (95% intervals; log-space for sizes); "
                 + (f"mechanism verdict (update {k}, logit-space size, paired over seeds): {verdict['overall']}"
                    if verdict else "no mechanism verdict (it needs an OPO variant and grpo or dapo)"), fontsize=9)
    data["verdict"] = verdict
    data["summary"] = summary
    config = {"audit": repo_relative(directory), "settings": {k2: v for k2, v in record["settings"].items()
                                                                if k2 != "config"},
              "policy": record["policy"], "time_s": record["time_s"]}
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
