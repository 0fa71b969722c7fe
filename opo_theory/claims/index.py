"""The catalogue of checked claims (the ids are ours; keep them stable, append new ones)."""

from __future__ import annotations

from opo_theory.claims import bounds, dynamics, structure
from opo_theory.claims.verdict import Claim, Verdict

CLAIMS: tuple[Claim, ...] = (
    Claim("conservation", "eq 2", "sum pi = 1 <=> E_{pi_k}[v] = 0; H_0 = span{1}^perp", structure.conservation),
    Claim("escort-geodesic", "Prop 3.2", "log rho_alpha affine in alpha (e-geodesic from P* to pi_k); "
          "w~ ∝ (e^A/pi_k)^(1-alpha); alpha->1 uniform, alpha->0 P*/pi_k", structure.escort_geodesic),
    Claim("metric-modulation", "Lemma 3.3", "(M f)(y) = w~(y) f(y) is bounded, self-adjoint, positive "
          "when w~ is bounded and > 0", structure.metric_modulation),
    Claim("shift-invariance", "Remark 3.4", "<w~, v> = <w~ - w_bar, v> for all v in H_0", structure.shift_invariance),
    Claim("closed-form", "Thm 3.5, eq 11-13", "J(v) = -(mu/2)||v - w~/mu||² + ||w~||²/(2mu); maximizer over "
          "H_0 is v* = (w~ - E[w~])/mu; lambda* = E[w~]", structure.closed_form),
    Claim("update-ratio", "eq 14", "pi_{k+1}/pi_k = 1 + (w~ - w_bar)/mu", structure.update_ratio),
    Claim("three-derivations", "Cor 4.1", "projection, Euclidean mirror descent and linear response give "
          "the same v*", structure.three_derivations),
    Claim("bregman-chi2", "eq 16", "Bregman divergence of Psi = ½||v||² is ½ Pearson chi²; negative "
          "entropy gives KL", structure.bregman_chi2),
    Claim("decoupling", "Thm 6.1", "in v (function space): grad_v L = -g + mu v; hess_v L = mu I, "
          "independent of alpha",
          dynamics.decoupling),
    Claim("contraction", "Cor 6.2, eq 20", "in v: GD error shrinks by |1 - eta mu| per step; converges iff "
          "0 < eta < 2/mu; rate independent of alpha", dynamics.contraction),
    Claim("kl-saturation", "§6.3", "DPO gradient beta sigma(-beta m) and curvature beta² sigma(1-sigma) "
          "vanish exponentially in m; chi² restoring force mu|v - v*| does not", dynamics.kl_saturation),
    Claim("trust-region-duality", "Prop 6.3, Prop A.2", "the penalty is the Lagrangian of max <w~,v> "
          "s.t. ||v||² <= eps; for each eps there is mu giving the same solution", structure.trust_region_duality),
    Claim("positivity", "Prop 6.4, eq 21", "pi_{k+1} >= 0 everywhere iff mu >= w_bar - min w~; "
          "mu >= ||w~ - w_bar||_inf sufficient", bounds.positivity),
    Claim("log-ratio-error", "Lemma A.1, eq 22", "for delta = ||Delta||_inf < 1: |v - Delta| <= ½ delta² "
          "e^delta, |v² - Delta²| <= delta³ e^(2 delta); exact vs surrogate loss differ by O(E[Delta³])",
          bounds.log_ratio_error),
    Claim("tv-bound", "Prop A.3", "TV = ½E|v| <= ½ sqrt(E[v²])", bounds.tv_bound),
    Claim("centering-projection", "Remark 3.7", "centring is the orthogonal projection onto H_0; std "
          "scaling does not arise from it", structure.centering_projection),
    Claim("kl-exponential", "v1 abstract", "KL's optimum ratio grows exponentially in the value signal, "
          "chi²'s linearly", structure.kl_exponential),
    Claim("bounded-projection", "GOPO", "with v >= -1: v* = max(-1, (g - lambda*)/mu), lambda* root of "
          "E[v*] = 0; pi(y) = 0 iff g <= lambda* - mu; A = (1, .5, -.2, -1.3), mu = .5 gives lambda* = "
          "0.26667", bounds.bounded_projection, "GOPO"),
    Claim("lambda-zero", "GOPO", "lambda* = 0 for centred A only when min A >= -mu (fails for binary "
          "rewards with more than half correct and mu = 0.5)", bounds.lambda_zero, "GOPO"),
    Claim("toy-saturation", "§6.3, Fig 4", "OPO's gradient grows linearly in confidence while "
          "SFT/DPO/GRPO/DAPO/GSPO decay", dynamics.toy_saturation),
    Claim("dpo-asymmetry", "Feng et al. 2404.04626", "DPO's push on pi(y_w) vs pi(y_l) has ratio "
          "-pi(y_l)/pi(y_w)", dynamics.dpo_asymmetry, "other paper"),
    Claim("parameter-transfer", "Thm 6.1, Cor 6.2 in parameters", "the alpha-free curvature and the per-step "
          "contraction |1 - eta mu| carry over to gradient descent on the logits (like-for-like step "
          "eta_logit = K eta)", dynamics.parameter_transfer, "toolkit"),
    Claim("drive-kl-tilt", "eq 7 without the pi_k correction", "with the pi_k^-(1-alpha) factor dropped, the "
          "normalised escort drive e^((1-alpha)A)/E[.] is exactly pi*/pi_k for the KL-regularised optimum "
          "pi* = argmax E_pi[A] - beta KL(pi||pi_k) at beta = 1/(1-alpha)", structure.drive_kl_tilt, "toolkit"),
    Claim("centring-kl", "Remark 3.4 on the surrogate", "centring the surrogate's drive changes the loss "
          "trained by w_bar E_pi_k[Delta] = -w_bar KL(pi_k||pi_theta) (shift invariance holds for v in H_0 only; "
          "the exact form is unaffected)", structure.centring_kl, "toolkit"),
)

_BY_ID = {c.id: c for c in CLAIMS}


def catalogue() -> list[str]:
    """All claim ids, in catalogue order."""
    return [c.id for c in CLAIMS]


def get_claim(claim_id: str) -> Claim:
    if claim_id not in _BY_ID:
        raise ValueError(f"unknown claim id {claim_id!r}; allowed: {', '.join(catalogue())}")
    return _BY_ID[claim_id]


def check(claim_id: str) -> Verdict:
    """Run the check of one claim."""
    return get_claim(claim_id).run()


def check_all(ids: list[str] | None = None) -> list[Verdict]:
    """Run the checks of ``ids`` (all by default), validating every id first."""
    claims = [get_claim(i) for i in (ids or catalogue())]
    return [c.run() for c in claims]
