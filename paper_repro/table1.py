"""Table 1 (Exp 1): mean reward and grad norm over the last 20 steps, ours (mean ± 95% CI) next to the paper's."""

from __future__ import annotations

from opo_theory.figures.runs import compare_dir, load
from opo_theory.figures.style import FIGURES_DIR, save_data
from opo_theory.io import write_text_atomic
from opo_theory.lm.compare import mean_ci95, tail_mean

NAME = "table1"
PAPER = {"grpo": (0.686, 0.61), "gspo": (0.713, 0.50), "dapo": (0.67, 0.22), "opo": (0.756, 0.90)}


def rows(runs: dict) -> dict:
    out = {}
    for name, seed_rows in runs.items():
        reward = mean_ci95([tail_mean(r, "reward/mean", 20) for r in seed_rows])
        grad = mean_ci95([tail_mean(r, "grad/norm", 20) for r in seed_rows])
        out[name] = {"reward_last20": reward, "grad_norm_last20": grad, "paper": PAPER.get(name), "seeds": len(seed_rows)}
    return out


def main(rerun: bool = False):
    directory = compare_dir(rerun)
    table = rows(load(directory))
    lines = ["| objective | reward, last 20 (ours) | grad norm, last 20 (ours) | paper reward | paper grad norm |",
             "|---|---|---|---|---|"]
    for name, r in table.items():
        paper = r["paper"] or ("—", "—")
        lines.append(f"| {name} | {r['reward_last20'][0]:.3f} ± {r['reward_last20'][1]:.3f} | "
                     f"{r['grad_norm_last20'][0]:.3f} ± {r['grad_norm_last20'][1]:.3f} | {paper[0]} | {paper[1]} |")
    lines.append("\nOurs: cpu-tiny char GPT on arithmetic (train L3), 3 seeds, mean ± 95% t-interval. "
                 "Paper: Qwen3-1.7B on MATH Level 3, one seed. Grad norms of differently scaled losses are not comparable.")
    md = write_text_atomic(FIGURES_DIR / f"{NAME}.md", "\n".join(lines) + "\n")
    return [md, save_data(NAME, table, {"runs": str(directory)})]


if __name__ == "__main__":
    main()
