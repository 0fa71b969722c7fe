"""Table 2 (Exp 2): whole-run mean reward, OOD accuracy, grad norm and entropy, ours next to the paper's, and
OPO against each baseline (paired over seeds, across averaging windows; estimate, interval, MDD)."""

from __future__ import annotations

from opo_theory.figures.runs import describe_setup, exp2_dir, load
from opo_theory.figures.style import save_table
from opo_theory.io import repo_relative
from opo_theory.lm.experiments.compare import verdict_from_runs
from opo_theory.stats import mean_ci95, tail_mean

NAME = "table2"
PAPER = {"grpo": (0.544, 0.44, 0.674, 0.115), "dapo": (0.548, 0.44, 0.213, 0.126),
         "gspo": (0.553, 0.48, 0.623, 0.128), "opo": (0.558, 0.48, 1.279, 0.126),
         "gopo": (0.555, 0.47, 1.029, 0.134)}
COLUMNS = (("reward_whole_run", "reward/mean", 10**9), ("ood_accuracy_final", "val/ood_accuracy", 0),
           ("grad_norm_whole_run", "grad/norm", 10**9), ("entropy_whole_run", "entropy/mean", 10**9))
RANKED = (("val_accuracy", "val/accuracy", "greedy val accuracy"), ("ood_accuracy", "val/ood_accuracy", "OOD accuracy"),
          ("entropy", "entropy/mean", "entropy"))
NOTE = ("Ours: {setup}; mean ± 95% t-interval over seeds. Paper: Qwen3-1.7B, ~10% of MATH L3, 8 epochs, OOD = 100 "
        "MATH L4 problems, one seed (standard error ~5 points). The grad-norm column is pre-clip: where the clip binds "
        "(Table 1's 'clip binds' column) it measures the loss's scale, not the update applied.")


def main(rerun: bool = False):
    directory = exp2_dir(rerun)
    runs = load(directory)
    table, rows = {}, []
    for name, seed_rows in runs.items():
        table[name] = {col: mean_ci95([tail_mean(r, key, last) for r in seed_rows]) for col, key, last in COLUMNS}
        table[name]["paper"] = PAPER.get(name)
        paper = " / ".join(map(str, PAPER[name])) if name in PAPER else "—"
        rows.append([name] + [f"{table[name][c][0]:.3f} ± {table[name][c][1]:.3f}" for c, _, _ in COLUMNS] + [paper])
    ranking = {name: verdict_from_runs(runs, key, what) for name, key, what in RANKED}
    header = ["objective", "reward (run mean)", "OOD accuracy (final)", "grad norm (run mean)",
              "entropy (run mean)", "paper (reward / val acc / grad / entropy)"]
    note = NOTE.format(setup=describe_setup(directory)) + "\n\nOPO against each baseline: " + "; ".join(v["text"] for v in ranking.values()) + "."
    return save_table(NAME, header, rows, note, {"table": table, "ranking": ranking}, {"runs": repo_relative(directory)})


if __name__ == "__main__":
    main()
