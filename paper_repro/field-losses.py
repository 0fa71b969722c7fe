"""The field's policy losses on the saturation toy: where GRPO's clip zeroes the correct response's gradient, and at high confidence.

The Fig 4 binary-logit toy (opo_theory.bandit.saturation.binary_toy_gradients): two responses, the correct one
(reward 1, A > 0) with probability p = sigma(z). fixed-anchor: the anchor stays at p_old = 0.5 (a low-confidence
anchor: r = 2p passes GRPO's 1 + 0.2 at p = 0.6, where its clip zeroes the gradient); re-anchored: the anchor is
the current policy (r = 1, GRPO's clip cannot act). Measured per loss: |dL/dDelta_1| (the correct response's
log-ratio) and |dL/dz|, exact zeros counted. clip-cov and kl-cov pick tokens by a covariance over the whole
loss call's batch, so each p is its own call (clip-cov's random pick: torch's generator seeded with 0).
"""

from __future__ import annotations

import numpy as np
import torch

from opo_theory.bandit.saturation import REGIMES, binary_toy_gradients
from opo_theory.figures.style import color, new_figure, save_figure
from opo_theory.objectives import get
from opo_theory.objectives.field import BATCH_COUPLED, FIELD_LOSSES

NAME = "field-losses"
REFERENCE = "grpo"
POINTS, P_MAX = 240, 1 - 1e-6
PROBES = (0.7, 0.9, 0.99, 0.999)        # confidences reported in the table
FLOOR = 1e-12                          # exact zeros drawn on this floor (log axes)
COORDS = ("delta", "logit")
# one advantage for every loss (GRPO's z-score eps, 1e-6): TRL's entries default to TRL's 1e-4, which alone moves
# the gradient near p = 1 where the group std is tiny
SHARED = {"adv_eps": get(REFERENCE).make_config().adv_eps}


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


def main(rerun: bool = False):
    z = torch.linspace(0, float(np.log(P_MAX / (1 - P_MAX))), POINTS, dtype=torch.float64)
    p = torch.sigmoid(z).numpy()
    names = (REFERENCE, *FIELD_LOSSES)
    curves = {r: {n: toy_curves(n, z, r) for n in names} for r in REGIMES}
    summary = {r: regime_summary(curves[r], p) for r in REGIMES}
    verdict = classify(summary)
    fig, axes = new_figure(2, 2, width=4.6, height=3.4, layout="constrained")
    from matplotlib import colormaps
    palette = {n: colormaps["tab20"](k) for k, n in enumerate(FIELD_LOSSES)}
    q = 1 - p
    for i, regime in enumerate(REGIMES):
        for j, coord in enumerate(COORDS):
            ax = axes[i, j]
            for n in names:
                y = curves[regime][n][coord]
                ax.loglog(q, np.where(y > FLOOR, y, FLOOR), label=n,
                          color=color(n) if n == REFERENCE else palette[n],
                          lw=3 if n == REFERENCE else 1.3, alpha=0.6 if n == REFERENCE else 1.0,
                          ls="-" if n == REFERENCE or FIELD_LOSSES.index(n) % 2 == 0 else "--")
            ax.invert_xaxis()
            ax.set(xlabel="1 - p (confidence grows to the right)",
                   ylabel=f"|dL/d{'Delta_1' if coord == 'delta' else 'z'}| (exact 0 at {FLOOR:g})",
                   title=f"{regime}: |dL/d{'Delta_1' if coord == 'delta' else 'z'}|")
    axes[0, 1].legend(fontsize=6, ncol=2, loc="lower left")
    fig.suptitle("Field losses on the binary-logit toy (correct response A > 0; p_old = 0.5 when fixed)", fontsize=9)
    data = {"p": p.tolist(), "curves": {r: {n: {c: v.tolist() for c, v in cs.items()} for n, cs in by.items()}
                                        for r, by in curves.items()},
            "summary": summary, "verdict": verdict}
    config = {"points": POINTS, "p_max": P_MAX, "probes": list(PROBES), "losses": list(names),
              "hyperparameters": {"every loss": "registry defaults", **SHARED}, "regimes": list(REGIMES),
              "batch_coupled_per_point": list(BATCH_COUPLED), "clip_cov_seed": "torch.manual_seed(0)"}
    return save_figure(fig, NAME, data, config)


if __name__ == "__main__":
    main()
