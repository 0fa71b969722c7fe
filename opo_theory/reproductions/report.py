"""REPORT.md's section on the reproductions: each published statement beside the measured one, with a verdict
computed from the numbers of the committed figures/repro-*.json (never written beside them)."""

from __future__ import annotations

from collections.abc import Callable

ARTIFACTS = ("repro-ipo-bandit", "repro-sparse-regularization", "repro-chipo-bandit", "repro-likelihood-displacement")


def verdict(holds: bool) -> str:
    return "**holds**" if holds else "**does not hold**"


def ipo_part(d: dict) -> list[str]:
    s = d["summary"]
    betas = list(s["dpo_worst_pi_y3"])
    falling = all(s["dpo_pi_y3_still_falling"].values())
    closed = max(s["ipo_max_abs_error_to_closed_form"].values())
    tv = [s["ipo_tv_to_ref"][b] for b in betas]
    anchored = all(a > b for a, b in zip(tv, tv[1:])) and closed < 1e-3
    return [
        "### IPO's bandit (Azar et al. 2023) ([figure](figures/repro-ipo-bandit.png))",
        "Published: with deterministic preferences DPO drives the dispreferred action's probability to 0 for any "
        "beta; IPO stays regularised towards pi_ref.",
        "Measured (y_1 > y_2 > y_3, all three pairs, uniform reference, registry `dpo`/`ipo`): DPO's final pi(y_3) "
        + ", ".join(f"{s['dpo_worst_pi_y3'][b]:.1e} (beta {b})" for b in betas)
        + f", {'still falling at every beta' if falling else 'NOT falling at every beta'}; IPO's policy is within "
        f"{closed:.1e} of its closed form pi ∝ pi_ref exp((1, 0, -1)/(3 beta)), TV(pi, pi_ref) "
        + ", ".join(f"{s['ipo_tv_to_ref'][b]:.3f}" for b in betas)
        + f" (DPO {min(s['dpo_tv_to_ref'].values()):.3f}–{max(s['dpo_tv_to_ref'].values()):.3f}; a deterministic "
        f"policy has 0.667). Verdict: {verdict(falling and anchored)}.", ""]


def sparse_part(d: dict) -> list[str]:
    s, rows = d["summary"], d["rows"]
    first, last = rows[0], rows[-1]
    flat = abs(s["sparse_slope_per_log_actions"]) < 0.05 and s["sparse_within_bound"]
    grows = s["softmax_slope_per_log_actions"] > 0.5 and s["softmax_within_bound"]
    return [
        "### Sparse vs softmax regularisation error (Lee et al. 2018) ([figure](figures/repro-sparse-regularization.png))",
        "Published: the optimal policy's performance error is at most alpha (|A|-1)/(2|A|) (sparse Tsallis), a "
        "constant, against alpha log|A| (Shannon/KL), growing with the number of actions.",
        f"Measured (bandit, alpha = {d['alpha']}, worst two-level instance): softmax "
        f"{first['softmax']['worst']:.3f} at |A| = {first['actions']} -> {last['softmax']['worst']:.3f} at "
        f"|A| = {last['actions']} ({s['softmax_slope_per_log_actions']:.2f} alpha per unit of log|A|, bound 1); "
        f"sparse {first['sparse']['worst']:.4f} -> {last['sparse']['worst']:.4f} (slope "
        f"{s['sparse_slope_per_log_actions']:.3f}, bound {last['sparse_bound']:.3f}; at most "
        f"{max(r['sparse']['worst'] / r['sparse_bound'] for r in rows):.3f} of the bound at any |A|, softmax at most "
        f"{max(r['softmax']['worst'] / r['soft_bound'] for r in rows):.3f} of its bound); the toolkit's chi² projection "
        f"matches the published sparsemax to {s['sparse_formula_agrees']:.0e}. Verdict: {verdict(flat and grows)}.",
        "Finding for the chi² convention of OPO/GOPO: the constant bound is the chi² penalty at mu = alpha/|A|. At a "
        f"fixed mu = alpha the chi² optimum's error grows from {first['chi2_fixed_mu']['worst']:.3f} to "
        f"{last['chi2_fixed_mu']['worst']:.3f} (slope {s['chi2_fixed_mu_slope_per_log_actions']:.2f}): "
        "the sparse guarantee does not carry over to a fixed mu.", ""]


def chipo_part(d: dict) -> list[str]:
    s, table = d["summary"], d["table"]
    cells = "; ".join(f"n = {dp['n']}: DPO {dp['tuned_mean']:.3g} ± {dp['tuned_sem']:.2g} (beta {dp['tuned_beta']}), "
                      f"chiPO {cp['tuned_mean']:.3g} ± {cp['tuned_sem']:.2g} (beta {cp['tuned_beta']})"
                      for dp, cp in zip(table["dpo"], table["chipo"]))
    slope = lambda m: "n/a" if s["tuned_slope"][m] is None else f"{s['tuned_slope'][m]:.2f}"
    direction = bool(s["chipo_better_at_n"]) and not s["dpo_better_at_n"]
    return [
        "### chiPO's bandit (Huang et al. 2024, reconstructed instance) ([figure](figures/repro-chipo-bandit.png))",
        "Published: with beta tuned, chiPO's suboptimality is O(sqrt(C_pi*/n)); KL-regularised DPO over-optimises "
        "poorly covered actions. The appendix instance could not be read here; docs/reproductions.md states the "
        "reconstruction (y* with pi_ref 1/2, 20 rare bad actions, Bradley-Terry labels).",
        f"Measured (tuned suboptimality, mean ± s.e. over datasets): {cells}.",
        f"chiPO below DPO by more than 2 combined s.e. at n = {s['chipo_better_at_n'] or 'none'}; DPO below chiPO at "
        f"n = {s['dpo_better_at_n'] or 'none'} (DPO's mean is lower, within 2 s.e., at n = "
        f"{[dp['n'] for dp, cp in zip(table['dpo'], table['chipo']) if dp['tuned_mean'] < cp['tuned_mean'] and dp['n'] not in s['dpo_better_at_n']] or 'none'}); suboptimality 0 (below 1e-6) at n = {s['tuned_zero_at_n']['chipo']} "
        f"(chiPO) and {s['tuned_zero_at_n']['dpo']} (DPO). Log-log slope where non-zero: chiPO {slope('chipo')}, "
        f"DPO {slope('dpo')} (published rate -0.5 is a worst case over instances; on one fixed instance the error "
        "falls off a threshold instead). Verdict on the direction (chiPO better than DPO, never worse): "
        f"{verdict(direction)}; the rate is not testable on a fixed instance.", ""]


def displaces(run: str, f: dict, ran: dict) -> bool:
    """A run displaces 'like DPO' when, on the designed instance, it ends below half of pi_ref(y+), or it leaves
    at least half DPO's share of the random instances displaced."""
    return (f[run]["preferred"] < f[run]["reference_preferred"] / 2
            or ran[run]["final_displaced"] >= ran["dpo"]["final_displaced"] / 2)


def displacement_part(d: dict) -> list[str]:
    des, ran = d["designed"], d["random"]
    f = des["final"]
    names = [n for n in ran if isinstance(ran[n], dict)]
    agree = min(ran[n]["first_step_sign_matches_prediction"] for n in names)
    dpo_displaces = f["dpo"]["preferred"] < f["dpo"]["reference_preferred"] and f["dpo"]["aligned"] > 0.5
    penalty = [n for n in names if n.split("-reanchor")[0] in ("opo", "gopo")]
    like_dpo = [n for n in penalty if displaces(n, f, ran)]
    unlike = [n for n in penalty if n not in like_dpo]
    run_text = lambda n: (f"{n}: designed pi(y+) {f[n]['preferred']:.3g}, pi(Yes) {f[n]['aligned']:.3f}; random "
                          f"{ran[n]['final_displaced']:.1%} displaced, median Delta(y+) "
                          f"{ran[n]['median_final_delta_preferred']:.3f}")
    return [
        "### Likelihood displacement (Razin et al. 2024) ([figure](figures/repro-likelihood-displacement.png))",
        "Published: preferring y+ over y- can lower pi(y+) and move the mass to a token aligned with W+ - W- "
        "('No' over 'Never' raises 'Yes'); to first order d log pi(y+) ∝ <W+ - E_pi W, W+ - W->.",
        "Measured (single token, pi = softmax(W h), h trained by gradient descent, fixed reference): on the designed "
        f"instance pi(y+) {f['dpo']['reference_preferred']:.3f} -> " + ", ".join(
            f"{n} {f[n]['preferred']:.2g} (pi(Yes) {f[n]['aligned']:.3f})" for n in ("dpo", "ipo", "chipo") if n in f)
        + f". On {d['n_random']} random instances the first step's sign matches the formula on {agree:.0%} of them "
        "for every objective; share left with pi(y+) < pi_ref(y+) at the end: "
        + ", ".join(f"{n} {ran[n]['final_displaced']:.1%}" for n in ("dpo", "ipo", "chipo") if n in ran)
        + f" (predicted at the first step: {ran['predicted_displacing']:.1%}). Verdict on the published statement: "
        f"{verdict(dpo_displaces and agree == 1.0)}.",
        "New result, OPO's and GOPO's quadratic ratio penalty: at the anchor they move h along W+ - W- like DPO, so "
        "every run dips first; their separable penalty then pins Delta(y+) at +g/mu > 0 against the anchor. "
        + "; ".join(run_text(n) for n in penalty) + ". Displacing like DPO (designed pi(y+) below half its "
        "reference, or at least half DPO's displaced share): " + (", ".join(like_dpo) or "none") + "; not: "
        + (", ".join(unlike) or "none") + ". " + penalty_reading(penalty, like_dpo), ""]


def penalty_reading(penalty: list[str], like_dpo: list[str]) -> str:
    """What the runs say about the penalty, chosen by which of them displaced (fixed anchor vs inner steps)."""
    inner = lambda n: int(n.rpartition("-")[2]) if "-reanchor-" in n else None
    fixed = [n for n in penalty if inner(n) is None]
    steps = sorted({inner(n) for n in penalty if inner(n) is not None})
    if not steps:
        return "No re-anchored run was made."
    few, many = [n for n in penalty if inner(n) == steps[0]], [n for n in penalty if inner(n) == steps[-1]]
    if not set(fixed) & set(like_dpo) and set(few) <= set(like_dpo) and not set(many) & set(like_dpo):
        return (f"So the penalty prevents displacement where the inner loop gets near its fixed point (fixed anchor, "
                f"{steps[-1]} inner steps per anchor) and not with {steps[0]} inner steps per re-anchoring: each outer "
                "iteration repeats the first-order dip and the dips accumulate.")
    return "The runs do not split by anchoring regime; see the per-run numbers."


def reproductions_section(load: Callable[[str], dict]) -> list[str]:
    """The report section; ``load(name)`` returns the data of figures/<name>.json."""
    parts = (ipo_part, sparse_part, chipo_part, displacement_part)
    lines = ["## Reproductions of published results", "",
             "Four results published by others, rebuilt on the registry's losses and the bandit machinery "
             "(`opo_theory.reproductions`, method and reconstruction choices in docs/reproductions.md).", ""]
    for name, part in zip(ARTIFACTS, parts):
        lines += part(load(name))
    return lines
