"""Table 1 (Exp 1): mean reward and grad norm over the last 20 steps, ours (mean ± 95% CI) next to the paper's,
and OPO against each baseline (paired over seeds, across averaging windows; estimate, interval, MDD)."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, describe_setup, load, reward_note, seed_config
from opo_theory.figures.style import save_table
from opo_theory.io import repo_relative
from opo_theory.lm.experiments.compare import verdict_from_runs
from opo_theory.stats import mean_ci95, tail_mean

NAME = "table1"
PAPER = {"grpo": (0.686, 0.61), "gspo": (0.713, 0.50), "dapo": (0.67, 0.22), "opo": (0.756, 0.90)}
NOTE = ("Ours: {setup}; mean ± 95% t-interval over seeds; {reward}. Paper: Qwen3-1.7B on MATH Level 3, one seed "
        "(its released reward adds a length bonus and a repetition penalty, so it is not accuracy). Grad norms "
        "are pre-clip, of the step's last update; norms of differently scaled losses are not directly comparable, and where "
        "the clip binds (column 'clip binds': share of logged steps with pre-clip norm > grad_clip) AdamW sees the "
        "clipped gradient, so the grad-norm column measures the loss's scale, not the update applied.")


def clip_binds(seed_rows: list[list[dict]], grad_clip: float) -> float:
    """Share of logged steps whose pre-clip gradient norm exceeds ``grad_clip`` (the clip binds)."""
    norms = [r["grad/norm"] for rows in seed_rows for r in rows if r.get("grad/norm") is not None]
    return sum(n > grad_clip for n in norms) / len(norms) if norms else float("nan")


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    runs = load(directory)
    table, rows = {}, []
    for name, seed_rows in runs.items():
        reward = mean_ci95([tail_mean(r, "reward/mean", 20) for r in seed_rows])
        grad = mean_ci95([tail_mean(r, "grad/norm", 20) for r in seed_rows])
        binds = clip_binds(seed_rows, seed_config(directory, name)["config"]["grad_clip"])
        table[name] = {"reward_last20": reward, "grad_norm_last20": grad, "clip_binds_share": binds,
                       "paper": PAPER.get(name)}
        paper = PAPER.get(name, ("—", "—"))
        rows.append([name, f"{reward[0]:.3f} ± {reward[1]:.3f}", f"{grad[0]:.3f} ± {grad[1]:.3f}", f"{binds:.0%}",
                     str(paper[0]), str(paper[1])])
    ranking = {"reward": verdict_from_runs(runs, "reward/mean", "training reward"),
               "grad_norm": verdict_from_runs(runs, "grad/norm", "pre-clip grad norm (loss scale under a binding "
                                                                 "clip)")}
    header = ["objective", "reward, last 20 (ours)", "grad norm, last 20 (ours)", "clip binds", "paper reward",
              "paper grad norm"]
    note = NOTE.format(setup=describe_setup(directory), reward=reward_note(directory))
    note += "\n\nOPO against each baseline: " + "; ".join(v["text"] for v in ranking.values()) + "."
    return save_table(NAME, header, rows, note, {"table": table, "ranking": ranking}, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
