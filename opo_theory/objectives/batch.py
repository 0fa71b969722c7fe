"""The one batch type every objective consumes (sequence RL and pairwise preference data).

Shapes: B responses, T token positions. Per-token tensors are ``[B, T]``; per-response ``[B]``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class PolicyBatch:
    """Per-token log-probs of the current policy and its anchors, plus rewards and grouping.

    logp      [B,T] log pi_theta(o_t | q, o_<t); carries the graph (gradients flow through it).
    logp_old  [B,T] log pi_k, the frozen anchor of this outer iteration (pi_old; OPO's pi_ref).
    mask      [B,T] 1 for response tokens that count, 0 for padding/prompt. Where it is 0 the
              per-token tensors may hold anything (even NaN or -inf): objectives ignore them.
              A row whose mask is all 0 is a response with no counted token (Delta = 0, no token
              losses; its reward and weight still count); the batch as a whole needs at least one
              counted token in a response of positive weight.
    rewards   [B]   scalar rewards R_i (optional when ``advantages`` is given).
    advantages[B]   precomputed advantages; when None, each objective computes its own from rewards.
    group     [B]   long, prompt-group index of each response (0..n_groups-1).
    logp_ref  [B,T] optional reference policy for KL-penalized objectives.
    chosen, rejected [P] integer indices into B forming preference pairs (pairwise objectives).
    entropy   [B,T] optional per-token entropy of pi_theta (diagnostics only).
    drive     [B]   optional precomputed OPO-family drive: the coefficient g_i of -v_i in the loss
              (centred escort weights, or mu v* for gopo-bounded), computed over whole groups
              elsewhere (an engine's advantage stage) for a micro-batch that holds parts of groups;
              the OPO family then uses it as given instead of computing it from rewards.
    sample_weight [B] optional non-negative weights: the batch stands for the distribution
              sum_i w_i delta_{y_i} (exact enumeration of a policy uses w_i = pi_k(y_i)); every
              mean over responses, group centring included, is then w-weighted. None = uniform
              (Monte-Carlo samples).
    normalizer      optional number that replaces the denominator of the loss's mean (sum_i w_i over
              responses, or the token count of token-mean): set by an engine that splits one optimizer
              step's batch into micro-batches (the step's total / micro-batches per step), so that the
              micro-batch losses add up to the step's loss. None = this batch's own. Losses only: the
              metrics stay this batch's means. Not a hyperparameter (no objective config holds it).
    """

    logp: Tensor
    logp_old: Tensor
    mask: Tensor
    group: Tensor
    rewards: Tensor | None = None
    advantages: Tensor | None = None
    logp_ref: Tensor | None = None
    chosen: Tensor | None = None
    rejected: Tensor | None = None
    entropy: Tensor | None = None
    drive: Tensor | None = None
    sample_weight: Tensor | None = None
    normalizer: float | None = None

    def __post_init__(self) -> None:
        validate_batch(self)

    @property
    def n_responses(self) -> int:
        return self.logp.shape[0]

    @property
    def n_groups(self) -> int:
        return n_groups(self.group)

    @property
    def lengths(self) -> Tensor:
        """[B] number of counted tokens per response."""
        return self.mask.sum(-1)

    def select(self, index: Tensor) -> PolicyBatch:
        """Sub-batch of responses ``index`` (pairs are dropped; groups keep their ids)."""
        take = lambda x: None if x is None else x[index]
        return replace(
            self, logp=self.logp[index], logp_old=self.logp_old[index], mask=self.mask[index],
            group=self.group[index], rewards=take(self.rewards), advantages=take(self.advantages),
            logp_ref=take(self.logp_ref), entropy=take(self.entropy),
            sample_weight=take(self.sample_weight), drive=take(self.drive), chosen=None, rejected=None,
        )

    def with_(self, **changes) -> PolicyBatch:
        return replace(self, **changes)


HALF_DTYPES = (torch.float16, torch.bfloat16)
_PER_TOKEN = ("logp", "logp_old", "logp_ref", "entropy")


def compute_batch(batch: PolicyBatch) -> PolicyBatch:
    """The batch every registered objective computes on (the registry applies it).

    Half-precision (float16/bfloat16) float fields are upcast to float32, so losses and metrics of
    half inputs are float32 (float16 cannot hold e^Delta or sums of 1e4 rewards); the gradient
    still reaches ``logp`` in its own dtype. Per-token entries where the mask is 0 are set to 0, so
    padding that holds NaN/inf cannot leak into a loss or a gradient. Unchanged values elsewhere:
    no re-validation needed.
    """
    off = None
    changes = {}
    for f in fields(PolicyBatch):
        x = getattr(batch, f.name)
        if not isinstance(x, Tensor) or not x.is_floating_point() or f.name == "mask":
            continue
        if x.dtype in HALF_DTYPES:
            x = x.float()
        if f.name in _PER_TOKEN:
            off = (batch.mask == 0) if off is None else off
            x = x.masked_fill(off, 0.0)
        changes[f.name] = x
    out = object.__new__(PolicyBatch)          # the input was validated; skip __post_init__
    for f in fields(PolicyBatch):
        object.__setattr__(out, f.name, changes.get(f.name, getattr(batch, f.name)))
    return out


def n_groups(group: Tensor) -> int:
    """Number of group ids 0..max(group)."""
    return int(group.max().item()) + 1


def _check_finite(name: str, x: Tensor, mask: Tensor | None = None) -> None:
    ok = torch.isfinite(x) if mask is None else torch.isfinite(x) | ~mask.bool()
    if not ok.all():
        bad = x[~ok][:3].tolist()
        raise ValueError(f"{name} must be finite where the mask is 1; found {bad}")


def check_normalizer(value) -> None:
    """A loss denominator: a finite number within MAGNITUDE (float32 losses stay finite), not a bool."""
    from opo_theory.objectives.config import MAGNITUDE

    low, high = MAGNITUDE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"normalizer must be a number between {low:g} and {high:g} (a loss denominator: the "
                         f"step's response or token count per micro-batch), got {value!r}")


def validate_batch(b: PolicyBatch) -> None:
    """Raise ValueError naming the offending field when shapes, masks or values are invalid."""
    if b.logp.dim() != 2:
        raise ValueError(f"logp must have shape [B, T], got {tuple(b.logp.shape)}")
    shape = tuple(b.logp.shape)
    n = shape[0]
    if n == 0:
        raise ValueError("batch must hold at least one response, got B = 0")
    for name in ("logp_old", "mask", "logp_ref", "entropy"):
        x = getattr(b, name)
        if x is not None and tuple(x.shape) != shape:
            raise ValueError(f"{name} must have the shape of logp {shape}, got {tuple(x.shape)}")
    for name in ("group", "rewards", "advantages", "sample_weight", "drive"):
        x = getattr(b, name)
        if x is not None and tuple(x.shape) != (n,):
            raise ValueError(f"{name} must have shape [B] = ({n},), got {tuple(x.shape)}")
    if b.rewards is None and b.advantages is None and b.drive is None:
        raise ValueError("batch needs rewards or advantages (or a precomputed drive); all are None")
    if b.group.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"group must be non-negative integer ids, got dtype {b.group.dtype}")
    if (b.group < 0).any():
        raise ValueError(f"group must be non-negative integer ids, got {b.group[b.group < 0][:3].tolist()}")
    if b.mask.is_floating_point() and not (torch.isfinite(b.mask) & (b.mask >= 0)).all():
        bad = b.mask[~(torch.isfinite(b.mask) & (b.mask >= 0))][:3].tolist()
        raise ValueError(f"mask must be finite and >= 0 (1 = counted token, 0 = ignored), found {bad}")
    for name in ("logp", "logp_old", "logp_ref"):
        x = getattr(b, name)
        if x is not None:
            _check_finite(name, x.detach(), b.mask)
    for name in ("rewards", "advantages", "drive"):
        x = getattr(b, name)
        if x is not None:
            _check_finite(name, x.detach())
    if b.normalizer is not None:
        check_normalizer(b.normalizer)
    if b.sample_weight is not None and (
            not torch.isfinite(b.sample_weight).all() or (b.sample_weight < 0).any()
            or b.sample_weight.sum() <= 0):
        w = b.sample_weight
        shown = w[~torch.isfinite(w) | (w < 0)][:3].tolist() or w[:5].tolist()
        raise ValueError(f"sample_weight must be finite, >= 0 and not all zero, got {shown}")
    lengths = b.mask.sum(-1)
    if not (lengths > 0).any():
        raise ValueError("batch needs at least one unmasked token; empty masks at rows "
                         f"{list(range(min(n, 5)))}{' ...' if n > 5 else ''} (all {n})")
    if b.sample_weight is not None and not ((b.sample_weight > 0) & (lengths > 0)).any():
        rows = torch.nonzero(lengths > 0).flatten()[:5].tolist()
        raise ValueError("batch needs an unmasked token in a response with sample_weight > 0; "
                         f"the rows with tokens {rows} all have sample_weight 0")
    if (b.chosen is None) != (b.rejected is None):
        raise ValueError("chosen and rejected must be given together")
    if b.chosen is not None:
        if b.chosen.shape != b.rejected.shape or b.chosen.dim() != 1 or b.chosen.numel() == 0:
            raise ValueError(
                f"chosen/rejected must be non-empty 1-D index tensors of equal length, got "
                f"{tuple(b.chosen.shape)} and {tuple(b.rejected.shape)}")
        if b.chosen.dtype not in (torch.int32, torch.int64) or b.rejected.dtype != b.chosen.dtype:
            raise ValueError("chosen and rejected must be integer index tensors, got "
                             f"{b.chosen.dtype} and {b.rejected.dtype}")
        for name in ("chosen", "rejected"):
            idx = getattr(b, name)
            if (idx < 0).any() or (idx >= n).any():
                raise ValueError(f"{name} indices must lie in [0, {n}), got {idx.tolist()[:5]}")
