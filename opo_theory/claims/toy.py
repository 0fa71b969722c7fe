"""Verdicts on the bandit experiments' numbers: Fig 4's saturation statement and the alpha-mu independence.

The experiments (opo_theory.bandit) return numbers only; these functions turn them into evidence and judge it
with the one rule (``verdict.judge``), and add the verdict keys to the experiment's summary.
"""

from __future__ import annotations

from opo_theory.claims.verdict import Evidence, Finding, holding_conditions, judge

# The paper's 'rate depends on mu only, final reward on alpha only', as variance shares of the main effects.
RATE_DOMINANT = 0.9      # mu's share of the logit-rate variance must exceed this
NEGLIGIBLE = 0.1         # mu's share of the final-reward variance must stay below this


def setting_label(row: dict) -> str:
    """The condition one Fig 4 setting row is judged under: regime, coordinate, OPO form, DPO beta."""
    return f"{row['regime']}, d/d{row['coordinate']}, OPO {row['opo_form']}, DPO beta={row['dpo_beta']:g}"


def saturation_finding(rows: list[dict], threshold: float) -> Finding:
    """The evidence for the toy-saturation claim: per setting (a condition each), OPO's min ratio u/u(p=.5)
    >= threshold and the slowest baseline's <= threshold."""
    ev = []
    for row in rows:
        cond = setting_label(row)
        ev.append(Evidence("OPO min u/u(p=.5)", row["opo_min_ratio"], threshold, "floor", condition=cond))
        ev.append(Evidence(f"slowest baseline ({row['slowest_baseline']}) min ratio", row["slowest_baseline_min_ratio"],
                           threshold, "bound", condition=cond))
    setup = (f"Binary-logit toy (z_ref = 0, rewards (1, 0)), p from 0.5 to p_max; u = -dL/dc is the gradient "
             f"toward the rewarded response (sign-aware); 'decays' means u falls below {threshold:g} x its p = 0.5 "
             f"value somewhere (minimum found by root-finding on the function, not on a grid); the statement holds "
             f"in a setting when OPO stays above it and all of SFT/DPO/GRPO/DAPO/GSPO fall below")
    return Finding(ev, setup=setup, notes=(
        "Fixed-anchor logit: OPO's gradient turns away from the reward past its own fixed-anchor optimum; what "
        "survives in |dL/dz| is the Delta² penalty on the unchosen response (see `opo-theory bandit saturation`).",))


def judge_saturation(result: dict) -> dict:
    """``bandit.saturation``'s result with the verdict added: each setting row's 'holds', and the summary's
    'holds_in' (labels of the settings where the statement holds), 'claim_verdict' and 'claim_detail'."""
    s = result["summary"]
    finding = saturation_finding(s["settings"], result["config"]["threshold"])
    holding = set(holding_conditions(finding))
    for row in s["settings"]:
        row["holds"] = setting_label(row) in holding
    verdict, detail = judge(finding)
    s.update({"holds_in": [setting_label(row) for row in s["settings"] if row["holds"]],
              "claim_verdict": verdict, "claim_detail": detail})
    return result


def inner_label(inner) -> str:
    """The condition of one inner-steps setting of the grid."""
    return f"{inner} inner steps per outer iteration"


def independence_finding(by_inner: dict) -> Finding:
    """The paper's 'rate depends on mu only, final reward on alpha only', one condition per inner-steps
    setting: mu's share of the rate variance > RATE_DOMINANT, mu's share of the final reward < NEGLIGIBLE."""
    ev = []
    for inner, entry in by_inner.items():
        cond = inner_label(inner)
        ev.append(Evidence("mu's share of the logit-rate variance", entry["param_rate"]["mu_share"], RATE_DOMINANT,
                           "floor", condition=cond))
        ev.append(Evidence("mu's share of the final-reward variance", entry["final_reward"]["mu_share"], NEGLIGIBLE,
                           "bound", condition=cond))
    return Finding(ev, setup="Variance shares of the alpha and mu main effects over alpha x mu x seeds")


def judge_grid(result: dict) -> dict:
    """``bandit.grid``'s result with the independence verdict added to its summary: 'statement', 'rule',
    'holds_for_inner' (the inner-steps counts where it holds), 'verdict' and 'detail'."""
    by_inner = {int(n): e for n, e in result["by_inner"].items()}
    finding = independence_finding(by_inner)
    holding = set(holding_conditions(finding))
    verdict, detail = judge(finding)
    result["summary"].update({
        "statement": "convergence rate depends on mu only, final reward on alpha only",
        "rule": f"mu's share of the logit-rate variance > {RATE_DOMINANT} and of the final-reward variance "
                f"< {NEGLIGIBLE}",
        "holds_for_inner": [n for n in by_inner if inner_label(n) in holding], "verdict": verdict, "detail": detail})
    return result
