"""Fig 5: training reward vs step for each objective (LM compare runs; reward = accuracy when shaping is 0), and
the test of "OPO keeps improving after step 100 while the baselines plateau" when the runs are long enough."""

from opo_theory.figures.runs import (
    LONG_DIR,
    committed,
    compare_dir,
    line_figure,
    load,
    reward_label,
)
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


def main(rerun: bool = False):
    label = reward_label(compare_dir(rerun), 5)
    long_runs = committed(LONG_DIR, rerun)                    # the committed long runs, when there are any
    late = (lambda runs: {**after_late(load(LONG_DIR)), "long_runs": True}) if long_runs else after_late
    return line_figure("fig5-reward", [("reward/mean", label, 5, False)], "Training reward", rerun, extra=late)


if __name__ == "__main__":
    main()
