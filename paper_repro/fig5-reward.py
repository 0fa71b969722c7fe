"""Fig 5: training reward vs step for each objective and its paired difference to OPO's (LM compare runs; reward =
accuracy when shaping is 0), and the test of "OPO keeps improving after step 100 while the baselines plateau" when
the runs are long enough."""

from opo_theory.figures.runs import (
    LONG_DIR,
    band_note,
    committed,
    compare_dir,
    load,
    plot_metric,
    reward_label,
    summary_of,
)
from opo_theory.figures.style import colors, legend_outside, new_figure, save_figure
from opo_theory.io import repo_relative
from opo_theory.stats import change, versus, window_mean

LATE = 100          # the paper: curves cross after ~step 100, OPO keeps improving while the baselines plateau
MIN_STEPS = 200     # runs must reach 100 steps beyond LATE to test it


LATE_WINDOW = 0.2   # "after": the last 20% of the run


def after_late(runs: dict) -> dict:
    """Per objective, the paired change of the mean reward from steps [LATE - 20, LATE) to the last 20% of the
    run; the claim ("OPO keeps improving while the baselines plateau") is judged on the paired difference of
    changes, OPO's minus each baseline's over seeds (stats.versus), not by comparing significance levels
    (None when the runs end before MIN_STEPS)."""
    steps = min(max(r["step"] for r in rows) + 1 for seed_rows in runs.values() for rows in seed_rows)
    if steps < MIN_STEPS:
        return {"after_step_100": None, "steps": steps}
    changes, deltas = {}, {}
    for name, seed_rows in runs.items():
        before = [sum(r["reward/mean"] for r in rows if LATE - 20 <= r["step"] < LATE) / 20 for rows in seed_rows]
        after = [window_mean(rows, "reward/mean", LATE_WINDOW) for rows in seed_rows]
        changes[name] = change(before, after, f"reward, steps {LATE - 20}-{LATE - 1} -> last 20%")
        deltas[name] = [a - b for b, a in zip(before, after, strict=True)]
    late = versus({LATE_WINDOW: deltas}, "opo", f"reward change after step {LATE}", "higher")
    return {"after_step_100": {"change": changes, "difference_of_changes": late, "verdict": late["verdict"]},
            "steps": steps}


def paired_difference(runs: dict, key: str, reference: str = "opo") -> dict:
    """{objective: per seed, rows of (its ``key`` - the reference's) at the steps both logged}: seed k of each
    objective against seed k of the reference (the same SFT start; paired as in opo_theory.stats.versus)."""
    out = {}
    for name, seed_rows in runs.items():
        if name == reference:
            continue
        out[name] = []
        for own, ref in zip(seed_rows, runs[reference], strict=True):
            at = {r["step"]: r.get(key) for r in ref}
            out[name].append([{"step": r["step"], key: r[key] - at[r["step"]]} for r in own
                              if r.get(key) is not None and at.get(r["step"]) is not None])
    return out


def main(rerun: bool = False):
    key, smooth = "reward/mean", 5
    directory = compare_dir(rerun)
    runs = load(directory)
    label = reward_label(directory, smooth)
    palette = colors(list(runs))
    paired = "opo" in runs and len(runs) > 1       # (b): overlapping bands of 8+ objectives hide their differences
    fig, axes = new_figure(1 + paired, 1, layout="constrained")
    data = {key: plot_metric(axes[0, 0], runs, key, label, smooth, clip=(0.0, 1.0), palette=palette)}
    axes[0, 0].set_title("(a) each objective" if paired else "", fontsize=9)
    if paired:
        b = axes[0, 1]
        data["difference_to_opo"] = plot_metric(b, paired_difference(runs, key), key,
                                                f"reward - OPO's ({smooth}-step average)", smooth, palette=palette)
        b.axhline(0.0, color=palette["opo"], lw=1.2, label="opo (reference)")
        b.set_title("(b) minus OPO's, seed by seed (paired)", fontsize=9)
    if axes[0, 0].get_legend_handles_labels()[0]:          # no legend for a panel the runs left empty
        legend_outside(axes[0, -1], handles=axes[0, 0].get_legend_handles_labels()[0], fontsize=7)
    long_runs = committed(LONG_DIR, rerun)                    # the committed long runs, when there are any
    data.update({**after_late(load(LONG_DIR)), "long_runs": True} if long_runs else after_late(runs))
    fig.suptitle(f"Training reward ({summary_of(directory)['preset']} LM, {band_note(runs, [key])})", fontsize=9)
    return save_figure(fig, "fig5-reward", data, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
