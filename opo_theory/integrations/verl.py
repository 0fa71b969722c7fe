"""verl plugin: the OPO family of the registry as verl policy losses, with the estimator that feeds them.

Importing this module registers, in verl's registries (``verl.trainer.ppo.core_algos``):
  policy losses  ``opo_theory.opo``, ``opo_theory.opo-exact``, ``opo_theory.gopo``,
                 ``opo_theory.gopo-bounded`` (``actor_rollout_ref.actor.policy_loss.loss_mode``), and
                 two of TRL's losses verl lacks, ``opo_theory.vespo`` and ``opo_theory.cispo`` (TRL's cap),
                 which take verl's own advantages (see ``field_loss``);
  estimator      ``opo_theory`` (``algorithm.adv_estimator``); verl's own ``opo`` estimator is another
                 paper (arXiv 2505.23585), hence the prefix.
verl imports it in every process through the entry-point group ``verl.plugins`` (pyproject.toml), or
with ``VERL_USE_EXTERNAL_MODULES=opo_theory.integrations.verl``.

What travels where. verl hands a policy loss only old/current log-probs, advantages, the response mask
and its config: no rewards and no group ids, and a micro-batch holds parts of many groups. Every
objective of the family is L = -E[d v] + (mu/2) E[v²] (opo_theory.objectives.opo), where only the drive
d needs the group. So:
  driver  the estimator runs once per step on the whole batch (groups = verl's ``uid`` index) and
          computes d_i = whole_group_drive(name, ...) on a PolicyBatch at Delta = 0 (the actor has not
          moved from pi_k when advantages are computed): the centred escort weights of the geometry
          (eq 8) for opo / opo-exact / gopo, mu v* with v* = max(-1, (g - lambda*)/mu) and lambda* per
          group for gopo-bounded. It writes d_i on every response token of row i (``advantages``, and
          ``returns``).
  worker  the loss reads d_i back (one value per response), builds a PolicyBatch of its micro-batch
          carrying it as ``drive`` and calls the registry's objective (``get(name)``), with the mean
          over responses normalised by verl's global batch information (the batch's normalizer = global_batch_size /
          dp_size), so micro-batching and the
          data-parallel size do not change the loss or its gradient.
Both sides read one config: ``algorithm.opo_theory`` interpolates the actor's ``policy_loss`` node
(README, section verl). Limits: pi_factor (needs old log-probs, which verl's estimator does not get)
and the released normalisation (a sum within whole groups) are not fields of OPOLossConfig; the 'code' geometry's
p = softmax(Delta/tau) is taken at Delta = 0 on the driver, i.e. frozen for the step (the registry
re-evaluates it at the current Delta: equal on the first update of a step, not on later mini-batches).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor
from verl.trainer.ppo.core_algos import register_adv_est, register_policy_loss
from verl.workers.config import PolicyLossConfig

from opo_theory.objectives import DRIVE_KEY, REG_KEY, available, get
from opo_theory.objectives.batch import PolicyBatch, compute_batch
from opo_theory.objectives.opo import whole_group_drive

PREFIX = "opo_theory."
ESTIMATOR = "opo_theory"
# v of each objective: the surrogate Delta (opo) or the exact ratio e^Delta - 1 (the other three)
CONFIG_KEY = "opo_theory"     # algorithm.<CONFIG_KEY>: the objective's config, read by the estimator
DRIVE_ATOL = 1e-5             # advantages must be one value per response (the estimator's drive)


@dataclass
class OPOLossConfig(PolicyLossConfig):
    """verl ``policy_loss`` config of the OPO family (``_target_: opo_theory.integrations.verl.OPOLossConfig``).

    Each hyperparameter left None takes the registry's default for the objective named by
    ``loss_mode``; their meaning is the registry's (opo_theory.objectives.opo.OPOConfig / GOPOConfig).
    """

    loss_mode: str = PREFIX + "opo"
    alpha: float | None = None
    mu: float | None = None
    geometry: str | None = None
    center: str | None = None
    seq_logratio: str | None = None
    delta_clamp: float | None = None
    beta_r: float | None = None
    tau: float | None = None

    def __post_init__(self) -> None:
        objective_config(self)      # bad names or values are refused when verl builds the config


HYPERPARAMETERS = tuple(f.name for f in fields(OPOLossConfig) if f.name not in
                        {g.name for g in fields(PolicyLossConfig)})


def objective_name(loss_mode: str) -> str:
    """Registry name of a plugin loss mode: 'opo_theory.gopo' -> 'gopo' (ValueError otherwise)."""
    name = loss_mode[len(PREFIX):] if isinstance(loss_mode, str) and loss_mode.startswith(PREFIX) else None
    family = available(has_opo_drive=True)
    if name not in family:
        raise ValueError(f"policy_loss.loss_mode {loss_mode!r} is not an opo_theory loss; allowed: "
                         f"{', '.join(PREFIX + n for n in family)}")
    return name


def objective_config(node: Any):
    """(registry name, registry config) from a policy_loss node (dataclass, DictConfig or dict)."""
    name = objective_name(node.get("loss_mode"))
    given = {k: node.get(k) for k in HYPERPARAMETERS if node.get(k) is not None}
    return name, get(name).make_config(**given)


def group_ids(index) -> Tensor:
    """[B] long group ids 0..n-1 from verl's per-row ``uid`` array (any hashable ids)."""
    if index is None:
        raise ValueError(f"the {ESTIMATOR!r} estimator needs group ids (verl's uid index), got None")
    return torch.as_tensor(np.unique(np.asarray(index), return_inverse=True)[1].reshape(-1), dtype=torch.long)


def driver_drive(name: str, cfg, rewards: Tensor, response_mask: Tensor, group: Tensor) -> Tensor:
    """[B] drive d_i of objective ``name`` over whole groups at Delta = 0 (the registry's)."""
    zeros = torch.zeros(response_mask.shape, dtype=rewards.dtype, device=rewards.device)
    batch = compute_batch(PolicyBatch(logp=zeros, logp_old=zeros, mask=response_mask.to(rewards.dtype),
                                      group=group.to(rewards.device), rewards=rewards))
    return whole_group_drive(name, batch, cfg)


@register_adv_est(ESTIMATOR)
def compute_opo_theory_drive(token_level_rewards: Tensor, response_mask: Tensor, config=None,
                             index=None, **_unused) -> tuple[Tensor, Tensor]:
    """verl estimator: (advantages, returns) = d_i on every response token, d from whole groups."""
    node = None if config is None else config.get(CONFIG_KEY)
    if node is None:
        raise ValueError(f"the {ESTIMATOR!r} estimator reads the objective's config from algorithm."
                         f"{CONFIG_KEY}, got none; set +algorithm.{CONFIG_KEY}="
                         "'${actor_rollout_ref.actor.policy_loss}'")
    name, cfg = objective_config(node)
    with torch.no_grad():
        d = driver_drive(name, cfg, token_level_rewards.sum(-1), response_mask, group_ids(index))
        adv = d[:, None] * response_mask
    return adv, adv


def per_response(advantages: Tensor, mask: Tensor) -> Tensor:
    """[B] the one value the estimator wrote on each response's tokens (0 for a row with no token)."""
    n = mask.sum(-1)
    d = (advantages * mask).sum(-1) / n.clamp_min(1)
    spread = torch.where(mask != 0, (advantages - d[:, None]).abs(), torch.zeros_like(advantages))
    if (spread > DRIVE_ATOL * (1 + d.abs()[:, None])).any():
        raise ValueError("advantages vary within a response; the opo_theory losses take the drive of "
                         f"algorithm.adv_estimator={ESTIMATOR} (one value per response)")
    return d


def global_normalizer(config) -> float | None:
    """Denominator of the mean over responses: verl's global_batch_size / dp_size (None: this batch)."""
    info = getattr(config, "global_batch_info", None) or {}
    if info.get("global_batch_size") is None:
        return None
    return float(info["global_batch_size"]) / float(info.get("dp_size") or 1)


def opo_family_loss(name: str, old_log_prob: Tensor, log_prob: Tensor, advantages: Tensor,
                    response_mask: Tensor, config=None, rollout_is_weights: Tensor | None = None):
    """The registry's -E[d v] + (mu/2) E[v²] on a verl micro-batch; returns (loss, float metrics)."""
    if rollout_is_weights is not None:
        raise ValueError("rollout_is_weights are per-token weights; the opo_theory losses are "
                         "sequence-level: set algorithm.rollout_correction=null")
    node = getattr(config, "policy_loss", None)
    given = {} if node is None else {k: node.get(k) for k in HYPERPARAMETERS}
    normalizer = global_normalizer(config)
    _, cfg = objective_config({**given, "loss_mode": PREFIX + name})
    mask = response_mask.to(log_prob.dtype)
    d = per_response(advantages.detach().to(log_prob.dtype), mask)
    rows = torch.arange(log_prob.shape[0], device=log_prob.device)
    batch = PolicyBatch(logp=log_prob, logp_old=old_log_prob, mask=mask, group=rows, drive=d, normalizer=normalizer)
    loss, parts = get(name)(batch, cfg)
    # the parts carry the global normalisation (shares of the global mean); log them as this
    # micro-batch's own means, which verl averages over micro-batches
    local = 1.0 if normalizer is None else normalizer / batch.n_responses
    metrics = {f"actor/{k}": float(v.detach()) * (local if k in (DRIVE_KEY, REG_KEY, "loss/total") else 1.0)
               for k, v in parts.items()}
    return loss, metrics


def _register(name: str) -> None:
    @register_policy_loss(PREFIX + name)
    def loss_fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
                config=None, rollout_is_weights=None):
        # loss_agg_mode is not used: the family's loss is a mean over responses by definition
        return opo_family_loss(name, old_log_prob, log_prob, advantages, response_mask, config,
                               rollout_is_weights)

    loss_fn.__name__ = loss_fn.__qualname__ = f"opo_theory_{name.replace('-', '_')}_loss"
    loss_fn.__doc__ = f"verl policy loss {PREFIX + name}: the registry's {name!r} (see module docstring)."


for _name in available(has_opo_drive=True):
    _register(_name)


# ---------------------------------------------------------------------------------------- the field's losses
# TRL's losses that verl 0.9.1 does not ship: vespo, and cispo with TRL's absolute cap on the ratio (verl's own
# cispo clips to 1 ± eps). verl's own names cover the rest: luspo is verl's gspo with seq-mean-token-sum, bnpo
# its vanilla with token-mean, and sapo, gpg, clip_cov, kl_cov, geo_mean, dppo_*, dro are verl's (docs/integrations.md).
FIELD_PLUGIN = ("vespo", "cispo")
FIELD_HYPERPARAMETERS = ("k_pos", "lambda_pos", "k_neg", "lambda_neg", "eps_max", "convention", "eps_low",
                         "eps_high", "log_ratio_clamp")


@dataclass
class FieldLossConfig(PolicyLossConfig):
    """verl ``policy_loss`` config of the plugin's field losses (``_target_:
    opo_theory.integrations.verl.FieldLossConfig``, needed only to change a hyperparameter); None takes the
    registry's default (opo_theory.objectives.field.VESPOConfig / CISPOConfig)."""

    loss_mode: str = PREFIX + "vespo"
    k_pos: float | None = None
    lambda_pos: float | None = None
    k_neg: float | None = None
    lambda_neg: float | None = None
    eps_max: float | None = None
    convention: str | None = None
    eps_low: float | None = None
    eps_high: float | None = None
    log_ratio_clamp: float | None = None


def field_normalizer(config, loss_agg_mode: str) -> tuple[float | None, float | None]:
    """(normalizer, norm_len) of verl's agg_loss with the global batch information: token-mean divides by
    batch_num_tokens / dp_size, the sequence modes by global_batch_size / dp_size (and -norm by loss_scale_factor)."""
    info = getattr(config, "global_batch_info", None) or {}
    dp = float(info.get("dp_size") or 1)
    total = info.get("batch_num_tokens" if loss_agg_mode == "token-mean" else "global_batch_size")
    scale = info.get("loss_scale_factor")
    return (None if total is None else float(total) / dp), (None if scale is None else float(scale))


def field_loss(name: str, old_log_prob: Tensor, log_prob: Tensor, advantages: Tensor, response_mask: Tensor,
               loss_agg_mode: str, config=None, rollout_is_weights: Tensor | None = None):
    """The registry's ``name`` on a verl micro-batch: verl's advantages (one value per response), its
    aggregation mode and global normaliser; returns (loss, float metrics)."""
    if rollout_is_weights is not None:
        raise ValueError(f"rollout_is_weights are not modelled by the opo_theory.{name} loss; set "
                         "algorithm.rollout_correction=null")
    node = getattr(config, "policy_loss", None)
    given = {} if node is None else {k: getattr(node, k) for k in FIELD_HYPERPARAMETERS
                                     if getattr(node, k, None) is not None}
    normalizer, norm_len = field_normalizer(config, loss_agg_mode)
    cfg = get(name).make_config(**given, aggregation=loss_agg_mode, norm_len=norm_len)
    mask = response_mask.to(log_prob.dtype)
    rows = torch.arange(log_prob.shape[0], device=log_prob.device)
    batch = PolicyBatch(logp=log_prob, logp_old=old_log_prob, mask=mask, group=rows, normalizer=normalizer,
                        advantages=per_response(advantages.detach().to(log_prob.dtype), mask))
    loss, parts = get(name)(batch, cfg)
    return loss, {f"actor/{k}": float(v.detach()) for k, v in parts.items() if not k.startswith("loss/")}


def _register_field(name: str) -> None:
    @register_policy_loss(PREFIX + name)
    def loss_fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean",
                config=None, rollout_is_weights=None):
        return field_loss(name, old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
                          rollout_is_weights)

    loss_fn.__name__ = loss_fn.__qualname__ = f"opo_theory_{name}_loss"
    loss_fn.__doc__ = f"verl policy loss {PREFIX + name}: the registry's {name!r} (see field_loss)."


for _name in FIELD_PLUGIN:
    _register_field(_name)
