"""REPORT.md: every claim and every paper figure/table — the paper's statement, our measurement, the verdict.

Every number is read from the figures/*.json files that the other artifacts wrote; run it last.
"""

from __future__ import annotations

import json
from pathlib import Path

from opo_theory.figures.runs import RUNS_DIR, describe_setup
from opo_theory.figures.runs import load as load_compare
from opo_theory.figures.style import FIGURES_DIR, out_dir
from opo_theory.io import REPO_ROOT, git_revision, write_text_atomic

NAME = "report"
REQUIRES = ("claims-table", "fig4-saturation", "grid-alpha-mu", "approx-delta3", "table1", "table2",
            "fig7-saturation", "drive-vs-reg")


def report_path() -> Path:
    """REPORT.md at the repository root for the committed figures/, else inside the chosen output directory."""
    return REPO_ROOT / "REPORT.md" if out_dir() == FIGURES_DIR else out_dir() / "REPORT.md"


def load(name: str) -> dict:
    path = out_dir() / f"{name}.json"
    if not path.exists():
        raise ValueError(f"{path} is missing; run `opo-theory figures` (the report is built last)")
    return json.loads(path.read_text())["data"]


def load_runs() -> dict:
    return load_compare(RUNS_DIR)


def rank(values: dict[str, float], name: str) -> int:
    """1-based rank of ``name`` by decreasing value."""
    return sorted(values, key=lambda k: -values[k]).index(name) + 1


def fmt(pair) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def ind_holds(ind: dict) -> bool:
    """Rate set by mu (share > 0.9) and final reward by alpha more than by mu."""
    return ind["param_rate"]["mu_share"] > 0.9 and ind["final_reward"]["alpha_share"] > ind["final_reward"]["mu_share"]


def learning_summary(runs: dict) -> str:
    """Sampled accuracy of the first vs last 10 steps and greedy validation accuracy first vs last evaluation."""
    from opo_theory.lm.compare import mean_ci95
    parts, improved = [], False
    for name, seed_rows in runs.items():
        first = mean_ci95([sum(r["accuracy"] for r in rows[:10]) / 10 for rows in seed_rows])[0]
        last = mean_ci95([sum(r["accuracy"] for r in rows[-10:]) / 10 for rows in seed_rows])[0]
        val = [[r["val/accuracy"] for r in rows if "val/accuracy" in r] for rows in seed_rows]
        v0 = mean_ci95([v[0] for v in val])[0]
        v1 = mean_ci95([v[-1] for v in val])[0]
        parts.append(f"{name} {first:.3f} -> {last:.3f} (greedy val {v0:.3f} -> {v1:.3f})")
        improved = improved or (last > first + 0.05)
    verdict = ("At least one objective improves by more than 5 points." if improved else
               "No objective improves on the SFT starting policy by more than 5 points at this scale and "
               "length, so the comparisons below are between objectives that mostly hold their ground.")
    return "; ".join(parts) + ". " + verdict


def claims_section() -> list[str]:
    claims = load("claims-table")["claims"]
    counts = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    out = ["## Claims (spec §4)", "",
           "Verdicts from `opo-theory claims` (" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + "). "
           "`proved`: sympy; `verified`: numeric over >= 1000 seeded instances; `conditional`: holds only "
           "under the stated extra assumption; `refuted`: counterexample given.", "",
           "| id | source | paper states | verdict | what we found |", "|---|---|---|---|---|"]
    for c in claims:
        out.append(f"| `{c['id']}` | {c['source']} | {c['statement'].replace('|', '/')} | **{c['verdict']}** | "
                   f"{c['detail'].replace('|', '/')} |")
    return out + [""]


def toy_section() -> list[str]:
    sat, grid, approx = load("fig4-saturation"), load("grid-alpha-mu"), load("approx-delta3")
    s = sat["summary"]
    drop = sat["drop_p"]
    fmt_drop = lambda n, c: "never (to p = 1 - 1e-9)" if drop[n][c] is None else f"p = {drop[n][c]:.4f}"
    ind = grid["independence"]
    cross = approx["first_above_0.1"]
    cross = "none of the settings" if cross is None else f"eta = {cross['eta']}, {cross['inner']} inner steps"
    rates = ", ".join(f"{x:.4f}" for x in grid["param_rate_first_outer"][0])
    independent = ind_holds(grid["independence"])
    rows = [r for r in approx["rows"] if r["grad_cos"] is not None and r["E_delta3"] is not None]  # null: undefined
    worst_cos = min(r["grad_cos"] for r in rows)
    below = [r for r in rows if abs(r["E_delta3"]) <= 0.1]
    worst_cos_below = min(r["grad_cos"] for r in below) if below else float("nan")
    return [
        "## Toy figures (exact, CPU)", "",
        "### Fig 4 — toy saturation ([figure](figures/fig4-saturation.png))",
        "Paper: OPO's gradient grows linearly in confidence while SFT/DPO/GRPO/DAPO/GSPO decay ('clipped "
        "objectives cliff-drop by up to 9 orders of magnitude').",
        f"Measured (|grad| below 1e-3 of its p = 0.5 value): in the logit, SFT at {fmt_drop('sft', 'logit')}, "
        f"DPO(beta=1) at {fmt_drop('dpo(beta=1)', 'logit')}, GRPO at {fmt_drop('grpo', 'logit')}, DAPO at "
        f"{fmt_drop('dapo', 'logit')}, GSPO at {fmt_drop('gspo', 'logit')} (clipped objectives drop to exactly 0), "
        f"OPO {fmt_drop('opo', 'logit')}. In Delta: SFT {fmt_drop('sft', 'delta')} (its dL/dDelta is constant), "
        f"OPO {fmt_drop('opo', 'delta')}.",
        f"Verdict: in the logit the magnitude statement {'holds' if s['holds_in_logit'] else 'fails'}; in the "
        f"paper's own Delta coordinate it {'holds' if s['holds_in_delta'] else 'fails (SFT does not decay there)'}. "
        "OPO's surviving logit gradient at "
        f"p -> 1 is the chi² penalty pulling back toward the anchor (signed parts at p_max: drive "
        f"{s['opo_logit_parts_at_p_max']['logit_drive']:.3f}, penalty {s['opo_logit_parts_at_p_max']['logit_reg']:.3f}), "
        "driven by the low-probability response whose log-ratio diverges — a restoring force, not a stronger drive.", "",
        "### alpha–mu independence ([figure](figures/grid-alpha-mu.png))",
        "Paper (§7 check 2): convergence rate depends on mu only, final accuracy on alpha only.",
        f"Measured on a 20-armed bandit, 32 seeds: the function-space rate equals |1 - eta mu| to "
        f"{grid['function_rate_max_dev']:.1e}; in the logit the per-step rate at alpha = 0.3 is {rates} for "
        f"mu = 0.5, 1, 2 — still set by mu (variance share {ind['param_rate']['mu_share']:.4f}, 95% CI "
        f"{ind['param_rate']['mu_ci95'][0]:.4f}–{ind['param_rate']['mu_ci95'][1]:.4f}) but much slower than |1 - eta mu| "
        f"because the softmax Jacobian scales the step by pi. Final reward: alpha explains "
        f"{ind['final_reward']['alpha_share']:.2f} (CI {ind['final_reward']['alpha_ci95'][0]:.2f}–"
        f"{ind['final_reward']['alpha_ci95'][1]:.2f}) of its variance, mu {ind['final_reward']['mu_share']:.3f}.",
        f"Verdict: {'holds' if independent else 'does not hold'} on this toy (mu dominates the rate, alpha the final "
        "reward; the rest of the reward variance is between bandits). The rate in parameter space is not "
        "|1 - eta mu|.", "",
        "### Delta³ approximation error ([figure](figures/approx-delta3.png))",
        "Paper (§7 check 3): report E[Delta³]; above 0.1, tighten the trust region or use the exact form.",
        f"Measured on a 50-armed bandit: first setting with |E[Delta³]| > 0.1: {cross}. Among settings that stay "
        f"below 0.1, the cosine between exact and surrogate gradients falls to {worst_cos_below:.2f} (worst overall "
        f"{worst_cos:.2f}); Lemma A.1's bound held in all {approx['lemma_rows']} settings with delta < 1 "
        f"(tightness up to {approx['lemma_max_tightness']:.2f}).",
        ("Verdict: E[Delta³] under pi_k is a weak alarm — rare outcomes with large |Delta| barely move it while "
         "the surrogate's gradient direction already disagrees with the exact one; max|Delta| or the gradient "
         "cosine are better triggers." if worst_cos_below < 0.9 else
         "Verdict: below the 0.1 threshold the exact and surrogate gradients agree (cosine >= 0.9)."), ""]


def lm_section() -> list[str]:
    t1, t2 = load("table1"), load("table2")
    eff, split = load("fig7-saturation"), load("drive-vs-reg")
    objs = list(t1)
    grad = {o: t1[o]["grad_norm_last20"][0] for o in objs}
    reward = {o: t1[o]["reward_last20"][0] for o in objs}
    ent = {o: t2[o]["entropy_whole_run"][0] for o in objs}
    ood = {o: t2[o]["ood_accuracy_final"][0] for o in objs}
    effic = {o: (sum(eff["efficiency"][o]["mean"][-20:]) / len(eff["efficiency"][o]["mean"][-20:]))
             for o in eff["efficiency"]}
    reg = split["opo_split"]["grad/norm_reg"]["opo reg"]["mean"]
    drv = split["opo_split"]["grad/norm_drive"]["opo drive"]["mean"]
    table1 = (out_dir() / "table1.md").read_text()
    table2 = (out_dir() / "table2.md").read_text()
    return [
        "## Model-scale figures (CPU-scale LM runs)", "",
        f"All LM numbers come from `opo-theory compare --preset cpu-tiny` ({describe_setup(RUNS_DIR)}), logs in "
        "`figures/runs/cpu-tiny/`. They are CPU-scale: no GPU was available to this session, so nothing here is a "
        "reproduction of the paper's Qwen3-1.7B runs. The cpu-tiny preset trains one level below the paper's "
        "L3 -> L4 mirror: at L3 this model's SFT warm-up reaches only ~0.12 greedy accuracy, too weak a start "
        "for 100 RL steps to improve.", "",
        "Did RL learn? Sampled training accuracy, first 10 -> last 10 steps (mean over seeds): "
        + learning_summary(load_runs()), "",
        "### Table 1 / Fig 5 / Fig 6 — reward and gradient norm ([fig5](figures/fig5-reward.png), [fig6](figures/fig6-gradnorm.png))",
        table1,
        f"Paper: OPO ends with the highest reward (0.756) and the largest grad norm (0.90). Ours: OPO ranks "
        f"{rank(reward, 'opo')} of {len(objs)} by final reward and {rank(grad, 'opo')} of {len(objs)} by grad norm. "
        "Check the CIs before reading a ranking: most overlap.", "",
        "### Fig 7 — gradient response efficiency ([figure](figures/fig7-saturation.png))",
        "Paper: ||grad|| / (½ AdvRange) is ~1.0–1.5 for OPO, ~0.2–0.3 for GRPO, ~0.1 for DAPO.",
        "Ours (mean of the last 20 logged steps): " + ", ".join(f"{o} {v:.2f}" for o, v in effic.items()) + ".", "",
        "### Fig 8 — entropy ([figure](figures/fig8-entropy.png)); Table 2 / Fig 9 — OOD ([fig9](figures/fig9-ood.png))",
        table2,
        f"Paper: OPO's entropy is highest; OPO and GSPO reach the best validation accuracy (48%). Ours: OPO ranks "
        f"{rank(ent, 'opo')} of {len(objs)} by entropy; "
        + (f"OPO ranks {rank(ood, 'opo')} of {len(objs)} by final OOD accuracy." if max(ood.values()) >= 0.05 else
           f"every objective's final OOD accuracy is at most {max(ood.values()):.3f}: this model barely transfers "
           "to the harder level, so Fig 9 cannot discriminate here."), "",
        "### Drive vs regularizer ([figure](figures/drive-vs-reg.png))",
        f"OPO's gradient split (toolkit diagnostic): mean ||grad drive|| {sum(drv) / len(drv):.3f}, mean "
        f"||grad penalty|| {sum(reg) / len(reg):.3f} over training. The penalty's gradient is exactly 0 on the "
        "first update after each re-anchoring (Delta = 0 there), so with one update per rollout batch OPO's mu "
        "never acts and OPO is a policy gradient with escort-weighted advantages; the runs here take 4 updates "
        "per batch so that it does.", ""]


def main(rerun: bool = False):
    lines = ["# REPORT: what the OPO paper claims and what this toolkit measured", "",
             f"Generated by `opo-theory figures` (paper_repro/report.py) at git revision `{git_revision()}`; "
             "every number below is read from `figures/*.json`. Regenerate with `make run`.", ""]
    lines += claims_section() + toy_section() + lm_section()
    lines += ["## Not done here", "",
              "- No GPU run: the `gpu-small` preset and the model-scale comparison (issue 7) need a device machine, "
              "which this session did not have.",
              "- Fig 1 ([figure](figures/fig1-geometry.png)) and Fig 3 (a flow chart) are illustrations; Fig 1 is "
              "drawn from a computed 3-outcome example.", ""]
    return [write_text_atomic(report_path(), "\n".join(lines))]


if __name__ == "__main__":
    main()
