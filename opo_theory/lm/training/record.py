"""The metrics row: which key is measured when (WHEN, KEYS), and the one function every row is assembled with
(``build_row``), used by the trainer, the TRL adapter (opo_theory.integrations.trl) and the audit's per-update
record. A key has one meaning wherever it is logged: a quantity measured at another time gets its own name
(``pre/...`` in TRL, ``after_update/...`` in the audit). Formulas: docs/metrics.md."""

from __future__ import annotations

from fnmatch import fnmatchcase

from opo_theory.diagnostics import batch_metrics
from opo_theory.objectives import get

# when a phase's keys are measured
WHEN = {
    "count": "counters: `step` = the row's index in metrics.jsonl from 0, one row per logged update (the trainer: "
             "one per RL step = generation round, its last update logged; TRL: one per optimizer step); "
             "`generation` = TRL: the generation round the row's optimizer step trained on (the trainer's `step`); "
             "`updated` = whether the step applied an update",
    "rollout": "the step's rollout batch, before any update: rewards and correctness of the sampled responses",
    "update": "the logged update, at its forward and backward, before its optimizer step (trainer: the step's "
              "last training update, last PPO epoch; TRL: the optimizer step's global batch), plus the step "
              "that update took (grad/norm_applied, grad/update_norm); the objective's own metrics too",
    "after": "the policy after all of the step's updates against the step's anchor, on the whole step batch "
             "(trainer: one extra forward, trust_region_metrics=true)",
    "pre": "TRL: the policy at the optimizer step's loss calls (before that step's update) against the anchor, on "
           "that step's global batch (the `after` keys, prefixed)",
    "after_update": "audit: the policy after update k (k = 1..K) against the anchor, on the audit's rollout (the "
                    "`after` keys, prefixed; at k = K with the trainer's update count, the trainer's `after`)",
    "eval": "greedy evaluation on held-out problems (every val_every steps and the last)",
    "time": "wall clock and throughput of the step",
}

# the trust-region keys: measured against the anchor, on a batch at a given time (batch_metrics's keys
# without reward/ and entropy/)
TRUST_REGION = ("delta/mean", "delta/abs_max", "delta/m2", "delta/m3", "ratio/mean", "ratio/min", "ratio/max",
                "kl/k1", "kl/k2", "kl/k3", "chi2/seq", "approx/loss_gap", "approx/delta_inf", "approx/v_gap_max",
                "approx/lemma_bound", "approx/lemma_holds", "weights/ess")
PRE, AFTER_UPDATE = "pre/", "after_update/"

# every key (fnmatch pattern) and its phase; an objective's own metrics (loss/*, clip/*, ...) are `update`
KEYS: tuple[tuple[str, str], ...] = (
    ("step", "count"), ("generation", "count"), ("updated", "count"),
    ("reward/mean", "rollout"), ("reward/std", "rollout"), ("reward/frac_zero_std", "rollout"),
    ("accuracy", "rollout"), ("completions/mean_length", "rollout"), ("sampling/*", "rollout"),
    ("grad/norm", "update"), ("grad/norm_drive", "update"), ("grad/norm_reg", "update"),
    ("grad/cos_drive_reg", "update"), ("approx/grad_cos", "update"), ("grad/norm_applied", "update"),
    ("grad/update_norm", "update"), ("delta/abs_max_update", "update"), ("conf/*", "update"),
    ("entropy/mean", "update"), ("grad/response_efficiency", "update"), ("loss/*", "update"),
    ("clip/*", "update"), ("pair/*", "update"), ("gopo/*", "update"), ("drive/*", "update"),
    *((k, "after") for k in TRUST_REGION),
    *((PRE + k, "pre") for k in TRUST_REGION),
    *((AFTER_UPDATE + k, "after_update") for k in TRUST_REGION),
    ("val/*", "eval"), ("time/*", "time"), ("throughput/*", "time"),
)


def phase_of(key: str) -> str | None:
    """The phase (a WHEN key) of a row key; None for a key outside the table (an objective's own metric)."""
    for pattern, phase in KEYS:
        if fnmatchcase(key, pattern):
            return phase
    return None


def build_row(**sections: dict) -> dict:
    """One row from ``phase=metrics`` sections (phases of WHEN), merged in the order given; ValueError when a
    key is given under a phase the table does not assign it (a key keeps one meaning). Keys outside
    the table are allowed under ``update`` only (the objective's own metrics)."""
    row: dict = {}
    for phase, metrics in sections.items():
        if phase not in WHEN:
            raise ValueError(f"row section {phase!r} is not a phase; phases: {', '.join(WHEN)}")
        for key, value in metrics.items():
            known = phase_of(key)
            if known != phase and not (known is None and phase == "update"):
                raise ValueError(f"metric {key!r} given as {phase!r} but measured at {known!r} "
                                 f"(opo_theory.lm.training.record.KEYS); give it another name")
            row[key] = value
    return row


def trust_region(batch, objective: str, obj_cfg, prefix: str = "") -> dict[str, float]:
    """The TRUST_REGION keys of ``batch`` (policy log-probs against its logp_old anchor), each named ``prefix +
    key``: '' after the step's updates (trainer), PRE at the loss call (TRL), AFTER_UPDATE per audit update."""
    bm = batch_metrics(batch, objective, obj_cfg if get(objective).has_opo_drive else None)
    return {prefix + k: v for k, v in bm.items() if k in TRUST_REGION}


def rollout_record(rewards, group, correct=None) -> dict[str, float]:
    """Of the step's sampled groups (under dynamic sampling the first round, drawn uniformly; else the batch the
    objective sees): reward/mean, reward/frac_zero_std (diagnostics.frac_zero_std) and accuracy (mean of
    ``correct``, when given)."""
    from opo_theory.diagnostics import frac_zero_std

    out = {"reward/mean": float(rewards.mean()), "reward/frac_zero_std": frac_zero_std(rewards, group)}
    if correct is not None:
        out["accuracy"] = float(correct.float().mean())
    return out


def with_efficiency(update: dict[str, float], adv) -> dict[str, float]:
    """The logged update's metrics plus grad/response_efficiency of its grad/norm over the step batch's
    advantages ``adv`` (diagnostics.response_efficiency), when the gradient was measured."""
    from opo_theory.diagnostics import response_efficiency

    if "grad/norm" not in update:
        return update
    return {**update, "grad/response_efficiency": response_efficiency(update["grad/norm"], adv)}
