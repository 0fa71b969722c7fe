"""The field's policy losses as TRL 1.16.0 (GRPOConfig.loss_type) and verl 0.9.1 (@register_policy_loss) ship them.

TRL: bnpo, cispo, sapo, luspo, vespo. verl: cispo, sapo, gpg, clip_cov (clip-cov), kl_cov (kl-cov),
geo_mean (gmpo), dppo_tv (dppo-tv), dppo_kl (dppo-kl), dro. A name both ship with different definitions is
one entry with a named option per convention (cispo's ``convention``; sapo's ``log_ratio_clamp``). Every
token loss is aggregated by the registry's ``aggregate`` (verl's modes); docs/integrations.md lists each
difference from the engines. Notation: r = pi/pi_old per token, x = log r, A the response's advantage
(group z-score by default, as both engines), sg = stop-gradient, M the mask.

Every entry returns ``loss/total`` and, where the loss has one, ``clip/low_frac`` and ``clip/high_frac``
(A < 0 / A > 0 tokens whose gradient a clip removes); the weighted policy-gradient losses (gradient
-w A grad log pi with a detached weight w) return ``pg/weight_mean`` (token mean of w) and
``pg/weight_zero_frac`` (share of tokens with w = 0: no gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from opo_theory.objectives.advantages import ADVANTAGE_KINDS, advantages
from opo_theory.objectives.batch import PolicyBatch
from opo_theory.objectives.clipped import (
    ClipConfig,
    _clip_metrics,
    clipped_surrogate,
    gspo_loss,
    token_pg,
)
from opo_theory.objectives.config import check_optional_positive, check_unit_interval
from opo_theory.objectives.reduce import (
    AGGREGATIONS,
    STD_KINDS,
    aggregate,
    mean_over_responses,
    safe_lengths,
)
from opo_theory.objectives.registry import DRIVE_KEY, REG_KEY, register
from opo_theory.validation import require_choice, require_int, require_nonnegative, require_positive

TRL_ADV_EPS, VERL_ADV_EPS = 1e-4, 1e-6      # the z-score's eps in TRL's and verl's advantages
VERL_LOG_RATIO_CLAMP = 20.0                  # verl clamps x to ±20 before exp in cispo, sapo, dppo
CISPO_CONVENTIONS = ("trl", "verl")
FIELD_LOSSES = ("bnpo", "luspo", "cispo", "sapo", "vespo", "gpg", "dro", "dppo-tv", "dppo-kl", "gmpo", "clip-cov",
                "kl-cov")
BATCH_COUPLED = ("clip-cov", "kl-cov")      # pick tokens by a covariance over the whole loss call's batch
# gradient -sg(w) A grad log pi by definition: not the derivative of the loss's value (w depends on log pi)
STOP_GRADIENT = ("cispo", "vespo", "dppo-tv", "dppo-kl")
RATIO_LEVELS = ("sequence", "token")


def _help(text: str) -> dict:
    return {"help": text}


def check_window(cfg) -> None:
    """eps_low, eps_high >= 0 (finite)."""
    require_nonnegative("eps_low", cfg.eps_low)
    require_nonnegative("eps_high", cfg.eps_high)


# ------------------------------------------------------------------------------------------ configs
@dataclass(frozen=True)
class AdvantageConfig:
    """Shared fields: advantage kind/eps/std (both engines: group z-score, std n-1), log_ratio_clamp (±x before
    exp). The denominator under micro-batching is the batch's ``normalizer``, set by the engines."""

    advantage: str = field(default="zscore", metadata=_help("zscore (R - mean)/(std + adv_eps) or centered"))
    adv_eps: float = field(default=VERL_ADV_EPS, metadata=_help("eps of the z-score (TRL 1e-4, verl 1e-6)"))
    adv_std: str = field(default="sample", metadata=_help("group std: sample (n-1, both engines) or population"))
    log_ratio_clamp: float | None = field(default=None, metadata=_help("x = log r clamped to ±value before exp "
                                                                       "(verl 20; None: only at float overflow)"))

    def __post_init__(self) -> None:
        require_choice("advantage", self.advantage, ADVANTAGE_KINDS)
        require_positive("adv_eps", self.adv_eps)
        require_choice("adv_std", self.adv_std, STD_KINDS)
        check_optional_positive("log_ratio_clamp", self.log_ratio_clamp)


@dataclass(frozen=True)
class FieldConfig(AdvantageConfig):
    """AdvantageConfig and the token losses' aggregation (verl's modes) with seq-mean-token-sum-norm's norm_len."""

    aggregation: str = field(default="token-mean", metadata=_help(f"token loss reduction: {', '.join(AGGREGATIONS)}"))
    norm_len: float | None = field(default=None, metadata=_help("seq-mean-token-sum-norm constant (None: batch T)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("aggregation", self.aggregation, AGGREGATIONS)
        check_optional_positive("norm_len", self.norm_len)


@dataclass(frozen=True)
class BNPOConfig(ClipConfig):
    """TRL's bnpo: GRPO's clip (eps = 0.2) with the token mean of the loss call's batch."""

    adv_eps: float = TRL_ADV_EPS
    aggregation: str = "token-mean"


@dataclass(frozen=True)
class LUSPOConfig(ClipConfig):
    """TRL's luspo: GSPO's sequence ratio (ratio_level='sequence'), each sequence's loss times its length."""

    adv_eps: float = TRL_ADV_EPS
    aggregation: str = "seq-mean-token-sum"
    ratio_level: str = field(default="sequence", metadata=_help("sequence (exp of the mean x, TRL's recommended "
                                                                 "importance_sampling_level) or token"))

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("ratio_level", self.ratio_level, RATIO_LEVELS)


@dataclass(frozen=True)
class CISPOConfig(FieldConfig):
    """convention 'trl': w = sg(min(r, eps_max)) (an absolute cap; TRL's epsilon_high, 5.0 recommended by TRL's
    docs); 'verl': w = sg(clip(r, 1 - eps_low, 1 + eps_high)) with x clamped to ±20 first."""

    adv_eps: float = TRL_ADV_EPS
    convention: str = field(default="trl", metadata=_help("trl (absolute cap eps_max) or verl (1 ± eps window)"))
    eps_max: float = field(default=5.0, metadata=_help("trl convention: cap on the ratio (TRL epsilon_high)"))
    eps_low: float = field(default=0.2, metadata=_help("verl convention: weight >= 1 - eps_low"))
    eps_high: float = field(default=0.2, metadata=_help("verl convention: weight <= 1 + eps_high"))

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("convention", self.convention, CISPO_CONVENTIONS)
        require_positive("eps_max", self.eps_max)
        check_window(self)


@dataclass(frozen=True)
class SAPOConfig(FieldConfig):
    """Gate temperatures tau_pos (A > 0) and tau_neg (A <= 0), TRL's and verl's defaults 1.0 and 1.05."""

    adv_eps: float = TRL_ADV_EPS
    aggregation: str = "seq-mean-token-mean"
    tau_pos: float = field(default=1.0, metadata=_help("gate temperature where A > 0"))
    tau_neg: float = field(default=1.05, metadata=_help("gate temperature where A <= 0"))

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive("tau_pos", self.tau_pos)
        require_positive("tau_neg", self.tau_neg)


@dataclass(frozen=True)
class VESPOConfig(FieldConfig):
    """Gamma weight phi(w) = e^lambda w^k e^(-lambda w) on the sequence ratio w; (k, lambda) by A's sign (TRL's)."""

    adv_eps: float = TRL_ADV_EPS
    k_pos: float = field(default=2.0, metadata=_help("power k where A >= 0"))
    lambda_pos: float = field(default=3.0, metadata=_help("decay lambda where A >= 0"))
    k_neg: float = field(default=3.0, metadata=_help("power k where A < 0"))
    lambda_neg: float = field(default=2.0, metadata=_help("decay lambda where A < 0"))

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("k_pos", "lambda_pos", "k_neg", "lambda_neg"):
            require_nonnegative(name, getattr(self, name))


@dataclass(frozen=True)
class GPGConfig(FieldConfig):
    """GPG has no hyperparameter of its own: -A log pi per token."""


@dataclass(frozen=True)
class DROConfig(FieldConfig):
    """beta: coefficient of the per-token quadratic log-ratio penalty (verl's dro_beta, required there)."""

    beta: float = field(default=0.1, metadata=_help("penalty (beta/2) x² per token (verl: policy_loss.dro_beta)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive("beta", self.beta)


@dataclass(frozen=True)
class DPPOConfig(FieldConfig):
    """eps_low/eps_high: divergence thresholds (verl's clip_ratio_low/high, 0.2); trunc: cap of the detached
    ratio weight (verl's clip_ratio_c, 3.0 in ActorConfig); x clamped to ±20 as verl."""

    eps_low: float = field(default=0.2, metadata=_help("threshold of the divergence check where A <= 0"))
    eps_high: float = field(default=0.2, metadata=_help("threshold of the divergence check where A > 0"))
    trunc: float = field(default=3.0, metadata=_help("weight sg(min(r, trunc)) (verl clip_ratio_c)"))
    log_ratio_clamp: float | None = field(default=VERL_LOG_RATIO_CLAMP, metadata=_help("x = log r clamped to "
                                                                                       "±value before exp (verl 20)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_window(self)
        require_positive("trunc", self.trunc)


@dataclass(frozen=True)
class GMPOConfig(AdvantageConfig):
    """eps_low/eps_high bound x = log r per token (verl's clip_ratio_low/high, 0.2; the GMPO paper uses 0.4);
    the loss is a mean over responses (no token aggregation)."""

    eps_low: float = field(default=0.2, metadata=_help("x clipped at -eps_low where A < 0"))
    eps_high: float = field(default=0.2, metadata=_help("x clipped at +eps_high where A > 0"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_window(self)


@dataclass(frozen=True)
class ClipCovConfig(ClipConfig):
    """verl's clip_cov: ratio (share of tokens to zero), band (lb, ub) of the token covariance, seed of the
    random pick among the in-band tokens (None: torch's global generator, as verl)."""

    aggregation: str = "token-mean"
    ratio: float = field(default=2e-4, metadata=_help("share of the batch's tokens whose loss is zeroed, in (0, 1] "
                                                      "(at least 1 token)"))
    cov_lb: float = field(default=1.0, metadata=_help("covariance band lower bound (exclusive)"))
    cov_ub: float = field(default=5.0, metadata=_help("covariance band upper bound (exclusive)"))
    seed: int | None = field(default=None, metadata=_help("seed of a private generator for the random pick "
                                                          "(None: torch's global generator, as verl)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit_interval("ratio", self.ratio, low_open=True)     # a share of tokens
        if not self.cov_lb < self.cov_ub:
            raise ValueError(f"cov_lb must be < cov_ub, got {self.cov_lb!r} and {self.cov_ub!r}")
        if self.seed is not None:
            require_int("seed", self.seed, 0)


@dataclass(frozen=True)
class KLCovConfig(FieldConfig):
    """verl's kl_cov: ratio (share of tokens penalised, top covariance), coef of |x| on them (verl 0.1)."""

    ratio: float = field(default=2e-4, metadata=_help("share of the batch's tokens penalised, in (0, 1] (at least "
                                                      "1 token)"))
    coef: float = field(default=0.1, metadata=_help("coefficient of |log r| (verl policy_loss.ppo_kl_coef)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit_interval("ratio", self.ratio, low_open=True)     # a share of tokens
        require_nonnegative("coef", self.coef)


# ------------------------------------------------------------------------------------------ helpers
def log_ratio(batch: PolicyBatch, clamp: float | None) -> Tensor:
    """[B,T] x = log pi - log pi_old, clamped to ±clamp, and always below exp's overflow (log of dtype max - 1)."""
    x = batch.logp - batch.logp_old
    limit = math.log(torch.finfo(x.dtype).max) - 1.0
    return x.clamp(-limit, limit) if clamp is None else x.clamp(-min(clamp, limit), min(clamp, limit))


def token_advantages(batch: PolicyBatch, cfg) -> Tensor:
    """[B,T] the response's detached advantage on each token."""
    adv = advantages(batch, cfg.advantage, cfg.adv_eps, cfg.adv_std).detach().to(batch.logp.dtype)
    return adv[:, None].expand_as(batch.logp)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Token mean of x over counted tokens (0 when none)."""
    return (x * mask).sum() / mask.sum().clamp_min(1)


def weighted_pg(batch: PolicyBatch, cfg, weight: Tensor, adv: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """l = -sg(w) A log pi per token, aggregated; the metrics of the weighted policy-gradient family."""
    w = weight.detach()
    loss = aggregate(-w * adv * batch.logp, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    return loss, {"loss/total": loss.detach(), **weight_metrics(w, batch.mask)}


def weight_metrics(w: Tensor, mask: Tensor) -> dict[str, Tensor]:
    return {"pg/weight_mean": masked_mean(w, mask).detach(),
            "pg/weight_zero_frac": masked_mean((w == 0).to(mask.dtype), mask).detach()}


# ------------------------------------------------------------------------------------------ TRL
@register("bnpo", BNPOConfig, "token", "BNPO (TRL): GRPO's clipped token loss, token mean of the loss call's batch")
def bnpo_loss(batch: PolicyBatch, cfg: BNPOConfig):
    """l = -min(r A, clip(r, 1 ± 0.2) A), sum over the batch's tokens / their count (TRL loss_type='bnpo')."""
    return token_pg(batch, cfg)


@register("luspo", LUSPOConfig, "sequence", "LUSPO (TRL, arXiv 2602.05261): GSPO's clipped sequence ratio, "
          "sequence loss x length")
def luspo_loss(batch: PolicyBatch, cfg: LUSPOConfig):
    """s_i = exp(mean_t x), l_i = -min(s_i A_i, clip(s_i, 1 ± eps) A_i), L = E_i[|y_i| l_i] (seq-mean-token-sum;
    TRL loss_type='luspo' with importance_sampling_level='sequence'); ratio_level='token' clips per token."""
    return gspo_loss(batch, cfg) if cfg.ratio_level == "sequence" else token_pg(batch, cfg)


@register("cispo", CISPOConfig, "token", "CISPO (MiniMax-M1, arXiv 2506.13585): -sg(clip(r)) A log pi; "
          "convention trl (r <= eps_max) or verl (1 ± eps)")
def cispo_loss(batch: PolicyBatch, cfg: CISPOConfig):
    """l = -sg(w) A log pi with w = min(r, eps_max) (trl) or clip(r, 1 - eps_low, 1 + eps_high) (verl, x clamped
    to ±20): the ratio only weights the gradient, so no token loses it. clip/high_frac: A > 0 and r above the cap
    (TRL's cispo_clip_ratio); clip/low_frac: A < 0 and r below the floor (verl only); ratio/capped_frac: any r
    outside the window (verl's pg_clipfrac)."""
    verl = cfg.convention == "verl"
    x = log_ratio(batch, VERL_LOG_RATIO_CLAMP if verl else cfg.log_ratio_clamp)
    r = torch.exp(x)
    low, high = (1 - cfg.eps_low, 1 + cfg.eps_high) if verl else (None, cfg.eps_max)
    w = r.clamp(low, high)
    adv = token_advantages(batch, cfg)
    loss, metrics = weighted_pg(batch, cfg, w, adv)
    below = r < low if verl else torch.zeros_like(r, dtype=torch.bool)
    metrics.update(_clip_metrics({"low": below & (adv < 0), "high": (r > high) & (adv > 0)}, batch.mask))
    metrics["ratio/capped_frac"] = masked_mean(((r > high) | below).to(r.dtype), batch.mask).detach()
    return loss, metrics


@register("sapo", SAPOConfig, "token", "SAPO (arXiv 2511.20347): soft gate -(4/tau) sigmoid(tau (r - 1)) A")
def sapo_loss(batch: PolicyBatch, cfg: SAPOConfig):
    """l = -(4/tau) sigmoid(tau (r - 1)) A, tau = tau_pos where A > 0 else tau_neg; seq-mean-token-mean (TRL and
    verl). Gradient -w A grad log pi with w = 4 sigma(1 - sigma) r (1 at r = 1); pg/weight_* report w."""
    r = torch.exp(log_ratio(batch, cfg.log_ratio_clamp))
    adv = token_advantages(batch, cfg)
    tau = torch.where(adv > 0, torch.full_like(r, cfg.tau_pos), torch.full_like(r, cfg.tau_neg))
    gate = torch.sigmoid(tau * (r - 1))
    loss = aggregate(-(4 / tau) * gate * adv, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    w = 4 * gate * (1 - gate) * r
    return loss, {"loss/total": loss.detach(), **weight_metrics(w.detach(), batch.mask)}


LOG_1E_8 = math.log(1e-8)


def vespo_phi(batch: PolicyBatch, adv: Tensor, cfg: VESPOConfig) -> Tensor:
    """[B] phi(w) = exp(lambda + k log w - lambda w), log w = clamp(sum_t clamp(x, ±20), log 1e-8, 20) (TRL's)."""
    x = (batch.logp - batch.logp_old).detach().clamp(-20.0, 20.0)
    log_w = ((x * batch.mask).sum(-1)).clamp(LOG_1E_8, 20.0)
    nonneg = adv >= 0
    k = torch.where(nonneg, torch.full_like(log_w, cfg.k_pos), torch.full_like(log_w, cfg.k_neg))
    lam = torch.where(nonneg, torch.full_like(log_w, cfg.lambda_pos), torch.full_like(log_w, cfg.lambda_neg))
    lam = lam.clamp_min(1e-4)
    return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


@register("vespo", VESPOConfig, "token", "VESPO (arXiv 2602.10693): -sg(phi(w)) A log pi, gamma weight of the "
          "sequence ratio")
def vespo_loss(batch: PolicyBatch, cfg: VESPOConfig):
    """l = -sg(phi(w_i)) A_i log pi per token, w_i = prod_t r (TRL's clamps), phi(w) = e^lambda w^k e^(-lambda w)
    (phi(1) = 1), token-mean; vespo/phi_seq_mean: mean of phi over responses (TRL's metric)."""
    adv = advantages(batch, cfg.advantage, cfg.adv_eps, cfg.adv_std).detach().to(batch.logp.dtype)
    phi = vespo_phi(batch, adv, cfg)
    loss, metrics = weighted_pg(batch, cfg, phi[:, None].expand_as(batch.logp), adv[:, None].expand_as(batch.logp))
    metrics["vespo/phi_seq_mean"] = phi.mean().detach()
    return loss, metrics


# ------------------------------------------------------------------------------------------ verl
@register("gpg", GPGConfig, "token", "GPG (verl gpg): -A log pi, no ratio")
def gpg_loss(batch: PolicyBatch, cfg: GPGConfig):
    """l = -A log pi per token, aggregated (verl's gpg policy loss; GPG's own advantage estimator is not part)."""
    adv = token_advantages(batch, cfg)
    return weighted_pg(batch, cfg, torch.ones_like(adv), adv)


@register("dro", DROConfig, "token", "DRO (verl dro): -(A log pi - beta/2 x²) per token")
def dro_loss(batch: PolicyBatch, cfg: DROConfig):
    """l = -(A log pi - (beta/2) x²), x = log r per token, aggregated; loss/drive = -A log pi part, loss/reg the
    penalty (a per-token quadratic log-ratio penalty: OPO's surrogate penalty per token, uncentred drive)."""
    adv = token_advantages(batch, cfg)
    x = log_ratio(batch, cfg.log_ratio_clamp)
    drive = aggregate(-adv * batch.logp, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    reg = aggregate(0.5 * cfg.beta * x * x, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    loss = drive + reg
    return loss, {"loss/total": loss.detach(), DRIVE_KEY: drive, REG_KEY: reg}


def dppo(batch: PolicyBatch, cfg: DPPOConfig, divergence: str) -> tuple[Tensor, dict[str, Tensor]]:
    """l = -sg(min(r, trunc)) A log pi on tokens whose divergence check passes (arXiv 2602.04879, verl's)."""
    x = log_ratio(batch, cfg.log_ratio_clamp)
    r = torch.exp(x)
    adv = token_advantages(batch, cfg)
    p, p_old = torch.exp(batch.logp), torch.exp(batch.logp_old)
    if divergence == "tv":
        valid = torch.where(adv > 0, p - p_old <= cfg.eps_high, p - p_old >= -cfg.eps_low)
    else:
        kl = p_old * (batch.logp_old - batch.logp) + (1 - p_old) * torch.log((1 - p_old + 1e-8) / (1 - p + 1e-8))
        valid = torch.where(adv > 0, (kl <= cfg.eps_high) | (p <= p_old), (kl <= cfg.eps_low) | (p >= p_old))
    valid = valid.detach().to(r.dtype)
    loss, metrics = weighted_pg(batch, cfg, r.clamp(max=cfg.trunc) * valid, adv)
    metrics["ratio/truncated_frac"] = masked_mean((r > cfg.trunc).to(r.dtype) * valid, batch.mask).detach()
    return loss, metrics


@register("dppo-tv", DPPOConfig, "token", "DPPO binary-TV (verl dppo_tv): -sg(min(r, c)) A log pi where "
          "p - p_old stays within eps")
def dppo_tv_loss(batch: PolicyBatch, cfg: DPPOConfig):
    """Valid token: p - p_old <= eps_high (A > 0) or p - p_old >= -eps_low (A <= 0), p = pi(token);
    pg/weight_zero_frac = verl's pg_clipfrac, ratio/truncated_frac = its pg_clipfrac_lower."""
    return dppo(batch, cfg, "tv")


@register("dppo-kl", DPPOConfig, "token", "DPPO binary-KL (verl dppo_kl): -sg(min(r, c)) A log pi where the "
          "binary KL stays within eps")
def dppo_kl_loss(batch: PolicyBatch, cfg: DPPOConfig):
    """Valid token: KL_bin(p_old || p) = p_old log(p_old/p) + (1-p_old) log((1-p_old+1e-8)/(1-p+1e-8)) <= eps_high
    or p <= p_old (A > 0); <= eps_low or p >= p_old (A <= 0)."""
    return dppo(batch, cfg, "kl")


@register("gmpo", GMPOConfig, "sequence", "GMPO (verl geo_mean, arXiv 2507.20673): -A exp(mean_t clip(x)), "
          "geometric mean of clipped token ratios")
def gmpo_loss(batch: PolicyBatch, cfg: GMPOConfig):
    """x~ = sgn(A) min(sgn(A) x, sgn(A) clip(x, -eps_low, eps_high)), s_i = exp(sum_t x~ / |y_i|), L = E_i[-A_i s_i]
    (mean over responses; verl: the micro-batch's row mean). clip/high_frac, clip/low_frac: tokens with A > 0
    and x > eps_high, A < 0 and x < -eps_low (the clip removes their gradient)."""
    x = log_ratio(batch, cfg.log_ratio_clamp)
    adv = token_advantages(batch, cfg)
    sgn = torch.sign(adv)
    x_clip = sgn * torch.minimum(sgn * x, sgn * x.clamp(-cfg.eps_low, cfg.eps_high))
    s = torch.exp((x_clip * batch.mask).sum(-1) / safe_lengths(batch))
    seq_adv = torch.where(batch.lengths > 0, adv[:, 0], torch.zeros_like(s))     # verl: a row without tokens has A = 0
    loss = mean_over_responses(-seq_adv * s, batch, batch.normalizer)
    flags = {"low": (adv < 0) & (x < -cfg.eps_low), "high": (adv > 0) & (x > cfg.eps_high)}
    return loss, {"loss/total": loss.detach(), **_clip_metrics(flags, batch.mask)}


_GENERATORS: dict[int, torch.Generator] = {}


def tie_generator(seed: int | None) -> torch.Generator | None:
    """A private generator per seed, advanced across calls (None: torch's global one)."""
    if seed is None:
        return None
    if seed not in _GENERATORS:
        _GENERATORS[seed] = torch.Generator().manual_seed(seed)
    return _GENERATORS[seed]


def token_covariance(adv: Tensor, logp: Tensor, mask: Tensor) -> Tensor:
    """[B,T] (A - mean A)(log pi - mean log pi), means over the batch's counted tokens (log pi detached)."""
    lp = logp.detach()
    return (adv - masked_mean(adv, mask)) * (lp - masked_mean(lp, mask))


@register("clip-cov", ClipCovConfig, "token", "Clip-Cov (verl clip_cov, arXiv 2505.22617): PPO clip, and the loss "
          "of a random share of in-band high-covariance tokens zeroed")
def clip_cov_loss(batch: PolicyBatch, cfg: ClipCovConfig):
    """Token covariance c = (A - mean A)(log pi - mean log pi) over the batch; among unclipped tokens with
    cov_lb < c < cov_ub, max(1, int(ratio n_tokens)) picked at random (randperm) have their loss and gradient
    zeroed; the rest is GRPO's clipped loss (no dual clip). cov/zeroed_frac: share zeroed (verl's pg_clipfrac)."""
    adv = token_advantages(batch, cfg)
    ratio = torch.exp(batch.logp - batch.logp_old)
    tok, flags = clipped_surrogate(ratio, adv, cfg)
    mask = batch.mask > 0
    clipped = (-adv * ratio < tok) & mask                 # the clipped branch is strictly larger
    cov = token_covariance(adv, batch.logp, batch.mask)
    band = (cov > cfg.cov_lb) & (cov < cfg.cov_ub) & mask & ~clipped
    idx = torch.nonzero(band)
    n_zero = max(int(cfg.ratio * batch.mask.sum().item()), 1)
    if len(idx):
        perm = torch.randperm(len(idx), generator=tie_generator(cfg.seed))
        idx = idx[perm[:min(n_zero, len(idx))].to(idx.device)]
    keep = torch.ones_like(tok)
    keep[idx[:, 0], idx[:, 1]] = 0
    loss = aggregate(tok * keep, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    return loss, {"loss/total": loss.detach(), **_clip_metrics(flags, batch.mask),
                  "cov/zeroed_frac": masked_mean((keep == 0).to(tok.dtype), batch.mask).detach()}


@register("kl-cov", KLCovConfig, "token", "KL-Cov (verl kl_cov, arXiv 2505.22617): -A r, plus coef |log r| on the "
          "top-covariance tokens")
def kl_cov_loss(batch: PolicyBatch, cfg: KLCovConfig):
    """l = -A r on every token (no clip), + coef |x| on the max(1, int(ratio n_tokens)) tokens of largest
    covariance (A - mean A)(log pi - mean log pi) (topk over the counted tokens in row-major order);
    loss/drive = the -A r part, loss/reg the penalty; cov/penalized_frac: share penalised."""
    x = log_ratio(batch, cfg.log_ratio_clamp)
    adv = token_advantages(batch, cfg)
    mask = batch.mask > 0
    flat = torch.nonzero(mask.reshape(-1), as_tuple=True)[0]
    a, lp = adv.reshape(-1)[flat], batch.logp.detach().reshape(-1)[flat]
    cov = (a - a.mean()) * (lp - lp.mean())
    top = flat[torch.topk(cov, max(1, int(len(cov) * cfg.ratio))).indices]
    chosen = torch.zeros(batch.logp.numel(), dtype=batch.logp.dtype, device=batch.logp.device)
    chosen[top] = 1
    chosen = chosen.view_as(batch.logp)
    drive = aggregate(-adv * torch.exp(x), batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    reg = aggregate(cfg.coef * x.abs() * chosen, batch, cfg.aggregation, cfg.norm_len, batch.normalizer)
    loss = drive + reg
    return loss, {"loss/total": loss.detach(), DRIVE_KEY: drive, REG_KEY: reg,
                  "cov/penalized_frac": masked_mean(chosen, batch.mask).detach()}
