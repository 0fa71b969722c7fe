"""Fig 6: (a) pre-clip and applied (post-clip) gradient norm, (b) OPO's pre-clip gradient split into drive and
chi² penalty, (c) max|Delta| after each step's updates against Lemma A.1's domain |Delta| < 1, (d) the applied
parameter update ||theta_after - theta_before|| when the runs log it."""

from __future__ import annotations

import numpy as np

from opo_theory.figures.runs import (
    APPLIED_KEY,
    band_note,
    compare_dir,
    load,
    plot_metric,
    seed_config,
    set_log,
)
from opo_theory.figures.style import (
    clip_outlying_bands,
    colors,
    new_figure,
    objective_legend,
    save_figure,
)
from opo_theory.io import repo_relative
from opo_theory.stats import mean_ci95

NAME = "fig6-gradnorm"
POST_CLIP = "grad/norm_post_clip"      # min(pre-clip norm, grad_clip): the gradient norm AdamW receives


def with_post_clip(runs: dict, clip: dict[str, float]) -> dict:
    """The runs with POST_CLIP = min(grad/norm, grad_clip) per row, computed from the logs."""
    return {name: [[{**r, POST_CLIP: min(r["grad/norm"], clip[name])} if r.get("grad/norm") is not None else r
                    for r in rows] for rows in seed_rows] for name, seed_rows in runs.items()}


def share(seed_rows: list[list[dict]], test) -> dict:
    """Share of logged steps where ``test(row)`` holds: per seed, mean and 95% t-interval over seeds."""
    per_seed = []
    for rows in seed_rows:
        flags = [test(r) for r in rows]
        flags = [f for f in flags if f is not None]
        per_seed.append(sum(flags) / len(flags) if flags else float("nan"))
    m, h = mean_ci95(per_seed)
    return {"mean": m, "ci95": h, "seeds": per_seed}


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    palette = colors(list(runs))
    clip = {name: seed_config(directory, name)["config"]["grad_clip"] for name in runs}
    runs = with_post_clip(runs, clip)
    logged = any(APPLIED_KEY in r for seed_rows in runs.values() for rows in seed_rows for r in rows)
    fig, axes = new_figure(2, 2, width=5.4, height=3.6, layout="constrained")
    a, b, c, d = (ax for row in axes for ax in row)
    data = {"grad_clip": clip, "update_norm_logged": logged}
    data["grad/norm"] = plot_metric(a, runs, "grad/norm", "grad norm (5-step average, log)", 5, palette=palette)
    data["post_clip"] = plot_metric(a, runs, POST_CLIP, "grad norm (5-step average, log)", 5, style="--",
                                  suffix=" post-clip", palette=palette)
    set_log(a)
    a.set(title="(a) pre-clip (solid) vs post-clip (dashed)")
    split = {n: r for n, r in runs.items() if any("grad/norm_reg" in x for rows in r for x in rows)}
    data["split"], data["penalty_dominates"] = {}, {}
    for name, seed_rows in split.items():
        one = {name: seed_rows}
        for key, style, what in (("grad/norm_drive", "-", "drive"), ("grad/norm_reg", ":", "penalty"),
                                 ("grad/norm", "--", "total")):
            drawn = plot_metric(b, one, key, "pre-clip grad norm (5-step average, log)", 5, style=style,
                                suffix=f" {what}", palette=palette)
            if name in drawn:                                 # none when the run is shorter than the window
                data["split"][f"{name} {what}"] = drawn[name]
        data["penalty_dominates"][name] = share(seed_rows, lambda r: None if r.get("grad/norm_reg") is None or
                                                r.get("grad/norm_drive") is None else r["grad/norm_reg"] > r["grad/norm_drive"])
    set_log(b)
    b.set(title="(b) OPO family: drive (solid), penalty (dotted), total (dashed)")
    data["delta/abs_max"] = plot_metric(c, runs, "delta/abs_max", "max|Delta| after the updates (5-step average)", 5,
                                        palette=palette)
    c.axhline(1.0, color="k", lw=0.8, ls=":")
    set_log(c)
    c.set(title="(c) trust region; Lemma A.1 needs max|Delta| < 1")
    data["delta_ge1_share"] = {name: share(seed_rows, lambda r: None if r.get("delta/abs_max") is None
                                           else r["delta/abs_max"] >= 1.0) for name, seed_rows in runs.items()}
    if logged:
        data["update_norm"] = plot_metric(d, runs, APPLIED_KEY, "||Delta theta|| per step (5-step average)", 5,
                                          palette=palette)
        set_log(d)
        d.set(title="(d) applied update (after clipping and AdamW)")
    else:
        d.set_axis_off()
    # one seed's spike stretched (a)-(c) by a decade: its band end is cut and marked (a log axis alone kept it)
    data["cut_band_ends"] = {p: clip_outlying_bands(ax) for p, ax in zip("abc", (a, b, c), strict=True)}
    objective_legend(b, palette, fontsize=7)      # one colour per objective in every panel; styles in the titles
    fig.suptitle(f"Gradient norm, last update of each step (cpu-tiny LM, {band_note(runs, ['grad/norm'])}); "
                 "post-clip = min(pre-clip, grad_clip)", fontsize=9)
    data["steps_logged"] = {n: int(np.mean([len(r) for r in s])) for n, s in runs.items()}
    return save_figure(fig, NAME, data, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
