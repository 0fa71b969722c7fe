"""Weighted reductions over responses, groups and tokens, and the four aggregation modes.

Every mean over responses uses the batch's normalized response weights w_i (uniform when
``sample_weight`` is None), so an exact enumeration (w_i = pi_k(y_i)) gives exact expectations.
"""

from __future__ import annotations

import torch
from torch import Tensor

from opo_theory.objectives.batch import PolicyBatch, n_groups
from opo_theory.validation import require_choice

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
SEQ_LOGRATIO = ("sum", "mean")


def response_weights(batch: PolicyBatch) -> Tensor:
    """[B] raw (unnormalized) response weights: sample_weight or ones."""
    if batch.sample_weight is None:
        return torch.ones(batch.n_responses, dtype=batch.logp.dtype, device=batch.logp.device)
    return batch.sample_weight.to(batch.logp.dtype)


def group_sum(x: Tensor, group: Tensor, n: int | None = None) -> Tensor:
    """[n] sum of x [B] over the responses of each group."""
    n = n_groups(group) if n is None else n
    return torch.zeros(n, dtype=x.dtype, device=x.device).index_add(0, group, x)


def group_extreme(x: Tensor, group: Tensor, reduce: str, n: int | None = None) -> Tensor:
    """[n] max ('amax') or min ('amin') of x [B] over the responses of each group."""
    require_choice("reduce", reduce, ("amax", "amin"))
    n = n_groups(group) if n is None else n
    fill = -torch.inf if reduce == "amax" else torch.inf
    return torch.full((n,), fill, dtype=x.dtype, device=x.device).scatter_reduce(0, group, x, reduce)


def group_mean(x: Tensor, group: Tensor, weight: Tensor) -> Tensor:
    """[B] w-weighted mean of x over each response's group, broadcast back to responses."""
    n = n_groups(group)
    weight = weight.to(x.dtype)      # rewards may be float64 while log-probs are float32
    num, den = group_sum(weight * x, group, n), group_sum(weight, group, n)
    return (num / den.clamp_min(torch.finfo(x.dtype).tiny)).index_select(0, group)


def center(x: Tensor, batch: PolicyBatch, mode: str = "group") -> Tensor:
    """Remark 3.7: x - E[x], the orthogonal projection onto H_0, per group or over the batch."""
    require_choice("center", mode, ("group", "batch"))
    w = response_weights(batch)
    if mode == "batch":
        return x - (w * x).sum() / w.sum()
    return x - group_mean(x, batch.group, w)


STD_KINDS = ("sample", "population")


def group_std(x: Tensor, batch: PolicyBatch, kind: str = "sample") -> Tensor:
    """[B] w-weighted std of x within each response's group: 'population' sqrt(E_w[(x - E_w x)²]) or
    'sample' (the field's torch.std, Bessel n/(n-1) with n the group's response count; TRL and verl).

    With uniform weights 'sample' equals torch.std(unbiased=True) per group; a group of one response
    has std 0 under both (torch.std would give NaN).
    """
    require_choice("std kind", kind, STD_KINDS)
    w = response_weights(batch)
    dev = x - group_mean(x, batch.group, w)
    var = group_mean(dev * dev, batch.group, w)
    if kind == "sample":
        count = group_sum(torch.ones_like(x), batch.group).index_select(0, batch.group)
        var = var * count / (count - 1).clamp_min(1)
    return var.sqrt()


def safe_lengths(batch: PolicyBatch) -> Tensor:
    """[B] lengths with 1 for fully masked rows: a mean over no token is taken as 0 (0 / 1)."""
    lengths = batch.lengths
    return torch.where(lengths > 0, lengths, torch.ones_like(lengths))


def seq_logratio(batch: PolicyBatch, mode: str = "sum", clamp: float | None = None,
                 against: Tensor | None = None) -> Tensor:
    """[B] sequence log-ratio Delta_i = sum_t (log pi - log pi_k) (or its per-token mean); optional ±clamp.

    Masked entries are excluded (not multiplied by 0), so NaN/inf padding gives no NaN; a fully
    masked row has Delta = 0.
    """
    require_choice("seq_logratio", mode, SEQ_LOGRATIO)
    base = batch.logp_old if against is None else against
    diff = batch.logp - base
    diff = torch.where(batch.mask != 0, diff * batch.mask, torch.zeros_like(diff)).sum(-1)
    if mode == "mean":
        diff = diff / safe_lengths(batch)
    return diff if clamp is None else diff.clamp(-clamp, clamp)


def mean_over_responses(x: Tensor, batch: PolicyBatch, normalizer: float | None = None) -> Tensor:
    """sum_i w_i x_i / sum_i w_i; ``normalizer`` replaces sum_i w_i (micro-batching: pass the total)."""
    w = response_weights(batch)
    return (w * x).sum() / (w.sum() if normalizer is None else normalizer)


def aggregate(token_loss: Tensor, batch: PolicyBatch, mode: str, norm_len: float | None = None,
              normalizer: float | None = None) -> Tensor:
    """Reduce [B,T] token losses (verl's modes; response weights w_i multiply each response).

    token-mean: sum_i w_i sum_t l / sum_i w_i L_i; seq-mean-token-mean: E_w[sum_t l / L_i] (a fully
    masked row contributes 0, still counting in E_w);
    seq-mean-token-sum: E_w[sum_t l]; seq-mean-token-sum-norm: E_w[sum_t l] / norm_len (T by default).
    ``normalizer`` replaces the denominator (sum_i w_i L_i or sum_i w_i) for micro-batching.
    """
    require_choice("aggregation", mode, AGGREGATIONS)
    w = response_weights(batch)
    per_seq = (token_loss * batch.mask).sum(-1)
    if mode == "token-mean":
        den = (w * batch.lengths).sum() if normalizer is None else normalizer
        return (w * per_seq).sum() / den
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / safe_lengths(batch)
    elif mode == "seq-mean-token-sum-norm":
        per_seq = per_seq / (batch.logp.shape[1] if norm_len is None else norm_len)
    return mean_over_responses(per_seq, batch, normalizer)
