"""The field's policy losses on the saturation toy and in the audit: where GRPO's clip zeroes an A > 0 token's gradient, and at high confidence.

The Fig 4 binary-logit toy (opo_theory.bandit.saturation.binary_toy_gradients): two responses, the correct one
(reward 1, A > 0) with probability p = sigma(z). fixed-anchor: the anchor stays at p_old = 0.5 (a low-confidence
anchor: r = 2p passes GRPO's 1 + 0.2 at p = 0.6, where its clip zeroes the gradient); re-anchored: the anchor is
the current policy (r = 1, GRPO's clip cannot act). Measured per loss: |dL/dDelta_1| (the correct response's
log-ratio) and |dL/dz|, exact zeros counted. clip-cov and kl-cov pick tokens by a covariance over the whole
loss call's batch, so each p is its own call (clip-cov's random pick: torch's generator seeded with 0).

Audit (`opo-theory audit --objectives grpo,dapo,<the field's losses>` on the cpu-tiny SFT policy, committed under
figures/runs/cpu-tiny/audit-field): per bin of the anchor's token probability, the share of A > 0 tokens whose
gradient is exactly 0 at the last of K updates, compared with GRPO's by their 95% intervals over seeds.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from opo_theory.bandit.saturation import REGIMES, binary_toy_gradients
from opo_theory.figures.style import color, legend_outside, new_figure, save_figure
from opo_theory.io import REPO_ROOT
from opo_theory.lm.training.confidence import BIN_NAMES
from opo_theory.objectives import get
from opo_theory.objectives.field import BATCH_COUPLED, FIELD_LOSSES

NAME = "field-losses"
REFERENCE = "grpo"
POINTS, P_MAX = 240, 1 - 1e-6
PROBES = (0.7, 0.9, 0.99, 0.999)        # confidences reported in the table

def zero_floor(curves: dict) -> float:
    """Where exact zeros are drawn on the log axes: a decade below the smallest nonzero gradient of any curve
    (a fixed 1e-12 floor left five empty decades that squashed the curves)."""
    smallest = min(float(v[v > 0].min()) for by in curves.values() for c in by.values() for v in c.values()
                   if (v > 0).any())
    return 10.0 ** (np.floor(np.log10(smallest)) - 1)
COORDS = ("delta", "logit")
# one advantage for every loss (GRPO's z-score eps, 1e-6): TRL's entries default to TRL's 1e-4, which alone moves
# the gradient near p = 1 where the group std is tiny
SHARED = {"adv_eps": get(REFERENCE).make_config().adv_eps}
AUDIT_DIR = REPO_ROOT / "figures" / "runs" / "cpu-tiny" / "audit-field"
AUDIT_OBJECTIVES = (REFERENCE, "dapo", *FIELD_LOSSES)
AUDIT_NEEDS = (REFERENCE,)          # the audit's losses are compared with GRPO's (figures --audit DIR)
LOW_BINS, CONFIDENT_BINS = ("lt0.5", "0.5-0.9"), ("0.9-0.99", "0.99-0.999", "ge0.999")


def toy_curves(name: str, z: torch.Tensor, regime: str) -> dict[str, np.ndarray]:
    """|dL/dDelta_1| and |dL/dz| at every z (batch-coupled losses: one loss call per z)."""
    if name not in BATCH_COUPLED:
        g = binary_toy_gradients(name, SHARED, z, regime)
        return {c: g[c].numpy() for c in COORDS}
    torch.manual_seed(0)
    parts = [binary_toy_gradients(name, SHARED, z[i:i + 1], regime) for i in range(len(z))]
    return {c: np.concatenate([g[c].numpy() for g in parts]) for c in COORDS}


def regime_summary(curves: dict, p: np.ndarray) -> dict:
    """Per loss: where the gradient on the correct response is exactly 0, against GRPO's, and its size at PROBES."""
    grpo_zero = curves[REFERENCE]["delta"] == 0
    out = {}
    for name, c in curves.items():
        g = c["delta"]
        zero = g == 0
        at = {f"{q:g}": {k: float(np.interp(q, p, c[k])) for k in COORDS} for q in PROBES}
        out[name] = {
            "grpo_zero_points": int(grpo_zero.sum()),
            "kept_where_grpo_zero": float((~zero[grpo_zero]).mean()) if grpo_zero.any() else None,
            "zero_points": int(zero.sum()),
            "first_zero_p": float(p[zero][0]) if zero.any() else None,
            "zero_points_p_ge_0.9": int(zero[p >= 0.9].sum()),
            "max_rel_diff_from_grpo": float(np.max(np.abs(g - curves[REFERENCE]["delta"])
                                                   / np.maximum(curves[REFERENCE]["delta"], 1e-300))),
            "at": at,
            "over_grpo_at": {q: (v["delta"] / curves[REFERENCE]["delta"][np.argmin(abs(p - float(q)))]
                                 if curves[REFERENCE]["delta"][np.argmin(abs(p - float(q)))] > 0 else None)
                             for q, v in at.items()},
        }
    return out


def classify(summary: dict) -> dict:
    """Which losses keep a gradient on the A > 0 response where GRPO's clip zeroes it (fixed anchor, p_old = 0.5),
    and which keep one on confident tokens (re-anchored, p >= 0.9, where GRPO's clip cannot act)."""
    fa, ra = summary["fixed-anchor"], summary["re-anchored"]
    names = [n for n in fa if n != REFERENCE]
    return {
        "keeps_where_grpo_clip_zeroes": [n for n in names if fa[n]["kept_where_grpo_zero"] == 1.0],
        "partly_where_grpo_clip_zeroes": [n for n in names if 0 < (fa[n]["kept_where_grpo_zero"] or 0) < 1.0],
        "zeroed_like_grpo": [n for n in names if fa[n]["kept_where_grpo_zero"] == 0.0],
        "confident_kept_re_anchored": [n for n in names if ra[n]["zero_points_p_ge_0.9"] == 0],
        "confident_zeroed_re_anchored": {n: ra[n]["zero_points_p_ge_0.9"] for n in names
                                         if ra[n]["zero_points_p_ge_0.9"] > 0},
        "equal_to_grpo_re_anchored": [n for n in names if ra[n]["max_rel_diff_from_grpo"] <= 1e-9],
        "rule": "kept = |dL/dDelta_1| != 0 exactly at every grid point where GRPO's is 0 (fixed anchor) / at "
                "every grid point with p >= 0.9 (re-anchored); equal = within 1e-9 relative of GRPO's at every point",
    }


def audit_record(rerun: bool) -> dict | None:
    """The audit chosen with ``figures --audit DIR``, else the committed field audit (None if absent), or
    (``rerun``) a fresh one under runs/figures-rerun."""
    from opo_theory.figures.audit_source import chosen_audit, read_audit

    if chosen_audit() is not None:
        return read_audit(chosen_audit())
    if rerun:
        from opo_theory.lm.experiments.audit import audit_config, run_audit

        path = run_audit(audit_config("cpu-tiny", None, None, None), REPO_ROOT / "runs" / "figures-rerun" /
                         "audit-field", objectives=AUDIT_OBJECTIVES, resume=True, quiet=True)
        return json.loads(path.read_text())
    path = AUDIT_DIR / "audit.json"
    return json.loads(path.read_text()) if path.is_file() else None


def compare(x: dict, ref: dict) -> str:
    """'lower' / 'higher' than the reference when the 95% intervals do not overlap, else 'not separated'."""
    if x["mean"] is None or ref["mean"] is None:
        return "no tokens"
    if None in (x["low"], x["high"], ref["low"], ref["high"]):     # too few seeds with such tokens for an interval
        return "not separated"
    if x["high"] < ref["low"]:
        return "lower"
    return "higher" if x["low"] > ref["high"] else "not separated"


def audit_summary(record: dict) -> dict:
    """Per loss and bin, A > 0 tokens at the last update: zero-gradient share and |dL/dlogp| with intervals, each
    against GRPO's; the losses whose zero share is lower than GRPO's in every low-confidence bin where GRPO's is
    above 0, and those with any zero-gradient share in a confident bin."""
    last = {o: record["summary"][o]["per_bin"]["last"]["pos"] for o in record["summary"]}
    ref = last[REFERENCE]
    table = {o: {b: {"clip_zero": v["clip_zero"], "grad_abs": v["grad_abs"],
                     "zero_vs_grpo": compare(v["clip_zero"], ref[b]["clip_zero"]),
                     "grad_vs_grpo": compare(v["grad_abs"], ref[b]["grad_abs"])} for b, v in bins.items()}
             for o, bins in last.items()}
    clipped = [b for b in LOW_BINS if (ref[b]["clip_zero"]["mean"] or 0) > 0]
    others = [o for o in table if o != REFERENCE]
    return {"per_bin_pos_last": table, "grpo_clipped_bins": clipped,
            "keeps_where_grpo_clip_zeroes": [o for o in others if clipped and all(
                table[o][b]["zero_vs_grpo"] == "lower" for b in clipped)],
            "zero_in_confident_bins": {o: {b: table[o][b]["clip_zero"]["mean"] for b in CONFIDENT_BINS
                                           if (table[o][b]["clip_zero"]["mean"] or 0) > 0} for o in table
                                       if any((table[o][b]["clip_zero"]["mean"] or 0) > 0 for b in CONFIDENT_BINS)},
            "grad_vs_grpo_confident": {o: {b: table[o][b]["grad_vs_grpo"] for b in CONFIDENT_BINS
                                           if table[o][b]["grad_vs_grpo"] != "not separated"} for o in others},
            "settings": record["settings"], "policy": record["policy"], "time_s": record["time_s"],
            "rule": "A > 0 tokens, last update; 'lower' = the 95% interval over seeds lies below GRPO's"}


def _iv(x: dict, f: str = "{:.2f}") -> str:
    return "–" if x["mean"] is None else f"{f.format(x['mean'])} [{f.format(x['low'])}, {f.format(x['high'])}]"


def report_lines(data: dict) -> list[str]:
    """REPORT.md's section on the field's losses, every number read from this artifact's JSON."""
    fa, ra, v = data["summary"]["fixed-anchor"], data["summary"]["re-anchored"], data["verdict"]
    kept = lambda x: "–" if x is None else f"{x:.0%}"
    first = lambda x: "never" if x is None else f"{x:.3f}"
    rows = ["| loss | fixed anchor: GRPO-zeroed points kept | fixed anchor: first exact 0 at p | dL/dDelta_1 (abs) at "
            "p = 0.99, fixed / re-anchored | re-anchored: exact 0 at p >= 0.9 (points) |", "|---|---|---|---|---|"]
    for n in fa:
        rows.append(f"| {n} | {kept(fa[n]['kept_where_grpo_zero'])} | {first(fa[n]['first_zero_p'])} | "
                    f"{fa[n]['at']['0.99']['delta']:.3g} / {ra[n]['at']['0.99']['delta']:.3g} | "
                    f"{ra[n]['zero_points_p_ge_0.9']} |")
    g = lambda names: ", ".join(names) or "none"
    lines = ["## The field's losses on the saturation toy and in the audit "
             "([figure](figures/field-losses.png))", "",
             "The policy losses TRL 1.16.0 and verl 0.9.1 ship (registry, `opo_theory/objectives/field.py`; their "
             "conformance with the engines and every convention difference: docs/integrations.md) on the Fig 4 toy, "
             "registry defaults with GRPO's z-score eps for all. Fixed anchor: p_old = 0.5, so GRPO's clip zeroes the "
             f"correct (A > 0) response's gradient from p = {first(fa[REFERENCE]['first_zero_p'])} on "
             f"({fa[REFERENCE]['grpo_zero_points']} of {len(data['p'])} grid points). Re-anchored: r = 1, where no "
             "clip acts.", "", *rows, "",
             f"Keep a gradient at every point where GRPO's clip zeroes it: **{g(v['keeps_where_grpo_clip_zeroes'])}**; "
             f"only near the anchor: {g(v['partly_where_grpo_clip_zeroes'])}; zeroed like GRPO: "
             f"{g(v['zeroed_like_grpo'])}. On confident tokens with r = 1 (re-anchored, p >= 0.9) the gradient equals "
             f"GRPO's exactly for {g(v['equal_to_grpo_re_anchored'])}; it is zeroed at some points only by "
             + (", ".join(f"{n} ({k} points)" for n, k in v["confident_zeroed_re_anchored"].items()) or "none")
             + " (its covariance band). Rule: " + v["rule"] + ".", ""]
    a = data.get("audit")
    if a is None:
        return lines + ["No field audit is committed (figures/runs/cpu-tiny/audit-field).", ""]
    t = a["per_bin_pos_last"]
    bins = [b for b in BIN_NAMES if b in t[REFERENCE]]
    k = a["settings"]["updates"]
    lines += [f"Audit (`opo-theory audit`, cpu-tiny SFT policy, {a['settings']['seeds']} rollout seeds, {k} updates "
              f"from the anchor, {a['time_s']:.0f} s): share of A > 0 tokens whose gradient is exactly 0 at update "
              f"{k}, per bin of p_old (mean [95% interval] over seeds; 'lower'/'higher': interval separated from "
              "GRPO's).", "",
              "| loss | " + " | ".join(bins) + " |", "|---" * (len(bins) + 1) + "|"]
    for o, row in sorted(t.items(), key=lambda kv: AUDIT_OBJECTIVES.index(kv[0]) if kv[0] in AUDIT_OBJECTIVES
                         else len(AUDIT_OBJECTIVES)):
        cells = [_iv(row[b]["clip_zero"]) + ("" if o == REFERENCE or row[b]["zero_vs_grpo"] == "not separated"
                                            else f" {row[b]['zero_vs_grpo']}") for b in bins]
        lines.append(f"| {o} | " + " | ".join(cells) + " |")
    conf = a["zero_in_confident_bins"]
    lines += ["", f"GRPO's clip zeroes A > 0 tokens' gradient in {g(a['grpo_clipped_bins'])}. Lower share than GRPO "
              f"in each of those bins: **{g(a['keeps_where_grpo_clip_zeroes'])}**. Any exact zero on A > 0 tokens "
              "in the confident bins (p_old >= 0.9): " + (", ".join(
                  f"{o} ({', '.join(f'{b} {x:.3f}' for b, x in bins_.items())})" for o, bins_ in conf.items())
                  or "none") + ". Size of the gradient on confident A > 0 tokens, |dL/dlogp| against GRPO's: "
              + (", ".join(f"{o} {', '.join(sorted(set(c.values())))} ({', '.join(c)})"
                           for o, c in a["grad_vs_grpo_confident"].items() if c) or "no interval separated")
              + ", the others not separated. Rule: " + a["rule"] + ".", ""]
    return lines


def main(rerun: bool = False):
    z = torch.linspace(0, float(np.log(P_MAX / (1 - P_MAX))), POINTS, dtype=torch.float64)
    p = torch.sigmoid(z).numpy()
    names = (REFERENCE, *FIELD_LOSSES)
    curves = {r: {n: toy_curves(n, z, r) for n in names} for r in REGIMES}
    summary = {r: regime_summary(curves[r], p) for r in REGIMES}
    verdict = classify(summary)
    fig, axes = new_figure(2, 2, width=4.6, height=3.4, layout="constrained")
    floor = zero_floor(curves)
    from matplotlib import colormaps
    palette = {n: colormaps["tab20"](k) for k, n in enumerate(FIELD_LOSSES)}
    q = 1 - p
    for i, regime in enumerate(REGIMES):
        for j, coord in enumerate(COORDS):
            ax = axes[i, j]
            for n in names:
                y = curves[regime][n][coord]
                ax.loglog(q, np.where(y > floor, y, floor), label=n,
                          color=color(n) if n == REFERENCE else palette[n],
                          lw=3 if n == REFERENCE else 1.3, alpha=0.6 if n == REFERENCE else 1.0,
                          ls="-" if n == REFERENCE or FIELD_LOSSES.index(n) % 2 == 0 else "--")
            ax.invert_xaxis()
            ax.set(xlabel="1 - p (confidence grows to the right)",
                   ylabel=f"|dL/d{'Delta_1' if coord == 'delta' else 'z'}| (exact 0 at {floor:g})",
                   title=f"{regime}: |dL/d{'Delta_1' if coord == 'delta' else 'z'}|")
            if regime == "re-anchored":          # most curves lie under GRPO's: say which do not
                apart = [n for n in FIELD_LOSSES if np.max(np.abs(curves[regime][n][coord] - curves[regime][REFERENCE][
                    coord]) / np.maximum(curves[regime][REFERENCE][coord], 1e-300)) > 1e-9]
                ax.text(0.98, 0.02, f"on GRPO's line: every loss but {', '.join(apart) or 'none'}", fontsize=7,
                        transform=ax.transAxes, va="bottom", ha="right")
    legend_outside(axes[0, 1], fontsize=7)
    fig.suptitle("Field losses on the binary-logit toy (correct response A > 0; p_old = 0.5 when fixed)", fontsize=9)
    data = {"p": p.tolist(), "curves": {r: {n: {c: v.tolist() for c, v in cs.items()} for n, cs in by.items()}
                                        for r, by in curves.items()},
            "summary": summary, "verdict": verdict}
    record = audit_record(rerun)
    if record is not None:
        data["audit"] = audit_summary(record)
    config = {"points": POINTS, "p_max": P_MAX, "probes": list(PROBES), "losses": list(names),
              "hyperparameters": {"every loss": "registry defaults", **SHARED}, "regimes": list(REGIMES),
              "batch_coupled_per_point": list(BATCH_COUPLED), "clip_cov_seed": "torch.manual_seed(0)"}
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
