"""The field's losses (opo_theory.objectives.field) against TRL 1.16.0's own loss computation, and in the
toolkit's instruments.

Conformance: ``GRPOTrainer._compute_loss`` runs unchanged on a trainer whose model call returns a leaf tensor of
per-token log-probs (the only stubs: that call and the single-process accelerator's gather/reduce), so TRL's
loss and its gradient w.r.t. the log-probs are compared with the registry entry's, in float64.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from conftest import micro_settings

from opo_theory.bandit.saturation import REGIMES, binary_toy_gradients
from opo_theory.cli import main
from opo_theory.lm.experiments.compare import read_metrics
from opo_theory.objectives import PolicyBatch, available, get
from opo_theory.objectives.advantages import advantages
from opo_theory.objectives.field import FIELD_LOSSES as FIELD

G, N, T = 3, 4, 6


def make_batch(seed: int = 0, scale: float = 0.8, dtype=torch.float64) -> PolicyBatch:
    """Three groups of four, ragged lengths with one fully masked row, ratios well past 1 ± 0.2 (and past 5)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (G * N,), generator=g)
    lengths[5] = 0
    mask = (torch.arange(T)[None] < lengths[:, None]).to(dtype)
    logp_old = -torch.rand(G * N, T, generator=g, dtype=dtype) * 3
    logp = (logp_old + scale * torch.randn(G * N, T, generator=g, dtype=dtype)).clamp(max=-1e-3)
    rewards = torch.randint(0, 3, (G * N,), generator=g).to(dtype)
    return PolicyBatch(logp=logp, logp_old=logp_old, mask=mask, group=torch.arange(G * N) // N, rewards=rewards)


def registry(name: str, batch: PolicyBatch, **hp):
    """Loss, d loss / d logp and metrics of the registry entry."""
    leaf = batch.logp.clone().requires_grad_(True)
    loss, metrics = get(name)(batch.with_(logp=leaf), get(name).make_config(**hp))
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad, {k: float(v.detach()) for k, v in metrics.items()}


class _OneProcess:
    """The accelerator of one process: gather and reduce are the identity."""

    num_processes = 1

    @staticmethod
    def reduce(x, reduction="sum"):
        return x

    @staticmethod
    def gather(x):
        return x


def trl(loss_type: str, batch: PolicyBatch, adv: torch.Tensor, **settings):
    """TRL's GRPOTrainer._compute_loss on the batch: loss, d loss / d logp, and the metrics it logged."""
    from trl import GRPOConfig, GRPOTrainer

    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    args = SimpleNamespace(**{**defaults, "loss_type": loss_type, "steps_per_generation": 1, **settings})
    leaf = batch.logp.clone().requires_grad_(True)
    n = batch.n_responses
    trainer = SimpleNamespace(
        args=args, loss_type=loss_type, beta=0.0, epsilon_low=args.epsilon,
        epsilon_high=args.epsilon_high if args.epsilon_high is not None else args.epsilon,
        importance_sampling_level=args.importance_sampling_level, top_entropy_quantile=1.0,
        off_policy_mask_threshold=None, use_vllm=False, vllm_importance_sampling_correction=False,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, current_gradient_accumulation_steps=1,
        max_completion_length=T, model=SimpleNamespace(training=True), accelerator=_OneProcess(),
        _metrics={"train": defaultdict(list)}, get_gamma_weights=GRPOTrainer.get_gamma_weights,
        _get_per_token_logps_and_entropies=lambda *a, **k: (leaf, torch.zeros_like(leaf), None))
    inputs = {"prompt_ids": torch.zeros(n, 1, dtype=torch.long), "prompt_mask": torch.ones(n, 1, dtype=torch.long),
              "completion_ids": torch.zeros(n, T, dtype=torch.long), "completion_mask": batch.mask,
              "advantages": adv, "old_per_token_logps": batch.logp_old, "num_items_in_batch": batch.mask.sum()}
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad, {k: v[-1] for k, v in trainer._metrics["train"].items()}


# (registry entry, its config, TRL loss_type, TRL settings, {registry metric: TRL metric})
CLIP = {"clip/low_frac": "clip_ratio/low_mean", "clip/high_frac": "clip_ratio/high_mean"}
CASES = [
    ("bnpo", {}, "bnpo", {}, CLIP),
    ("bnpo", {"eps_low": 0.1, "eps_high": 0.3}, "bnpo", {"epsilon": 0.1, "epsilon_high": 0.3}, CLIP),
    ("luspo", {}, "luspo", {"importance_sampling_level": "sequence"}, CLIP),
    ("luspo", {"ratio_level": "token", "eps_high": 0.28}, "luspo", {"epsilon_high": 0.28}, CLIP),
    ("cispo", {}, "cispo", {"epsilon_high": 5.0}, {"clip/high_frac": "cispo_clip_ratio"}),
    ("cispo", {"eps_max": 0.2}, "cispo", {}, {"clip/high_frac": "cispo_clip_ratio"}),   # TRL's default cap: 0.2
    ("cispo", {"eps_max": 1.5}, "cispo", {"epsilon_high": 1.5}, {"clip/high_frac": "cispo_clip_ratio"}),
    ("sapo", {}, "sapo", {}, {}),
    ("sapo", {"tau_pos": 2.0, "tau_neg": 3.0}, "sapo", {"sapo_temperature_pos": 2.0, "sapo_temperature_neg": 3.0}, {}),
    ("vespo", {}, "vespo", {}, {"vespo/phi_seq_mean": "vespo/phi_seq_mean"}),
    ("vespo", {"k_pos": 1.0, "lambda_pos": 0.5, "k_neg": 4.0, "lambda_neg": 1.0}, "vespo",
     {"vespo_k_pos": 1.0, "vespo_lambda_pos": 0.5, "vespo_k_neg": 4.0, "vespo_lambda_neg": 1.0},
     {"vespo/phi_seq_mean": "vespo/phi_seq_mean"}),
]


@pytest.mark.parametrize("name,hp,loss_type,settings,metric_names", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_trl_conformance(name, hp, loss_type, settings, metric_names):
    """Loss, gradient w.r.t. the per-token log-probs and the shared metrics equal TRL's, on two batches."""
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    for seed, scale in ((0, 0.8), (1, 0.05)):          # far from the anchor (clips, caps) and near it
        batch = make_batch(seed, scale)
        adv = advantages(batch, "zscore", 1e-4)          # TRL's: group z-score, std n-1, eps 1e-4
        ours, g_ours, m_ours = registry(name, batch, **hp)
        theirs, g_theirs, m_theirs = trl(loss_type, batch, adv, **settings)
        # TRL's sapo builds its temperatures with torch.where on Python floats: a float32 tensor, so 1.05
        # enters as 1.0499999523 (float32 rounding) in an otherwise float64 computation
        tol = {"rtol": 1e-6, "atol": 1e-9} if 1.05 in (hp.get("tau_pos", 1.0), hp.get("tau_neg", 1.05)) \
            and name == "sapo" else {"rtol": 1e-10, "atol": 1e-12}
        torch.testing.assert_close(ours, theirs, **tol)
        torch.testing.assert_close(g_ours, g_theirs, **tol)
        assert g_ours.abs().sum() > 0
        for mine, trls in metric_names.items():
            assert m_ours[mine] == pytest.approx(m_theirs[trls], rel=1e-6, abs=1e-9), (mine, trls)  # float32 metrics


def test_cispo_conventions_differ_as_documented():
    """trl caps the weight at eps_max (no floor); verl keeps it in [1 - eps_low, 1 + eps_high]."""
    batch = make_batch(0, 0.8)
    _, g_trl, m_trl = registry("cispo", batch, eps_max=1.2)
    _, g_verl, m_verl = registry("cispo", batch, convention="verl", eps_low=0.2, eps_high=0.2)
    assert m_trl["pg/weight_mean"] > m_verl["pg/weight_mean"] * 0 and not torch.allclose(g_trl, g_verl)
    assert m_trl["clip/low_frac"] == 0 < m_verl["clip/low_frac"]


def test_clip_cov_pick_follows_its_seed():
    """The random pick among in-band tokens comes from the seeded generator: one seed, one pick sequence."""
    from opo_theory.objectives import field

    batch = make_batch(3, 0.3)
    hp = {"ratio": 0.2, "cov_lb": 0.0, "cov_ub": 100.0}
    field._GENERATORS.pop(12345, None)
    first = [registry("clip-cov", batch, seed=12345, **hp)[1] for _ in range(3)]
    field._GENERATORS.pop(12345, None)
    again = [registry("clip-cov", batch, seed=12345, **hp)[1] for _ in range(3)]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.equal(first[0], g) for g in first[1:])          # the generator advances
    assert registry("clip-cov", batch, seed=12345, **hp)[2]["cov/zeroed_frac"] > 0


@pytest.mark.parametrize("name", FIELD)
def test_every_field_loss_is_registered_finite_and_documented(name):
    """Registered, described (formula in the docstring, a help line per own field), finite loss and gradient."""
    from opo_theory.objectives.describe import describe

    assert name in available()
    spec = get(name)
    text = describe(name)
    assert spec.summary in text and "loss:" in text
    for f in dataclasses.fields(spec.config_cls):
        if f.name == "norm_len" or f.metadata:
            continue
        assert f.name in {g.name for g in dataclasses.fields(spec.config_cls.__mro__[1])}, f.name
    loss, grad, metrics = registry(name, make_batch(4, 0.5))
    assert torch.isfinite(loss) and torch.isfinite(grad).all() and "loss/total" in metrics


# ------------------------------------------------------------------------------------------ instruments
def test_objectives_command_lists_every_field_loss(capsys):
    assert main(["objectives"]) == 0
    listing = capsys.readouterr().out
    assert all(re.search(rf"^{re.escape(n)}\s", listing, re.M) for n in FIELD)
    assert main(["objectives", "cispo"]) == 0
    assert "convention" in capsys.readouterr().out


@pytest.mark.parametrize("regime", REGIMES)
def test_saturation_toy_takes_every_field_loss(regime):
    """Both anchor regimes, every coordinate finite; at a low-confidence anchor (fixed, p_old = 0.5) GRPO's clip
    zeroes the correct response's gradient once r = 2p > 1.2 while CISPO's capped weight keeps it."""
    z = torch.linspace(0, 12, 7, dtype=torch.float64)
    for name in FIELD:
        g = binary_toy_gradients(name, {}, z, regime)
        assert all(torch.isfinite(g[c]).all() for c in ("delta", "logit", "v")), name
    grpo, cispo = (binary_toy_gradients(n, {}, z, regime)["delta"] for n in ("grpo", "cispo"))
    assert (cispo[1:] > 0).all()
    if regime == "fixed-anchor":
        assert (grpo[1:] == 0).all()          # z >= 2: p >= 0.88, r >= 1.76


def test_bandit_dynamics_takes_field_losses(capsys):
    assert main(["bandit", "dynamics", "--objectives", ",".join(FIELD), "--set", "steps=3", "seeds=2", "arms=4",
                 "group_size=4"]) == 0
    summary = capsys.readouterr().out.split("summary:")[1]
    assert all(re.search(rf"^\s+{re.escape(n)}\s+\d", summary, re.M) for n in FIELD)


@pytest.fixture(scope="module")
def micro(sft_cache):
    return micro_settings("val_every=1", "group_size=4", "steps=2", "shaping=0.5", cache=sft_cache)


def test_trainer_and_compare_run_field_losses(micro, tmp_path):
    """compare trains each listed loss with the toolkit's trainer and logs every metric it returns."""
    out = tmp_path / "cmp"
    assert main(["compare", "--objectives", "cispo,gmpo(eps_low=0.4),clip-cov", "--seeds", "1", "--out", str(out),
                 "--quiet", "--set", *micro]) == 0
    rows = {d.name: read_metrics(d / "seed0" / "metrics.jsonl") for d in out.iterdir() if d.is_dir()}
    assert len(rows) == 3 and all(len(r) == 2 for r in rows.values())
    assert {"pg/weight_mean", "ratio/capped_frac", "clip/high_frac"} <= set(rows["cispo"][0])
    assert "cov/zeroed_frac" in rows["clip-cov"][0]


def test_audit_runs_field_losses(micro, tmp_path):
    assert main(["audit", "--objectives", "grpo,sapo,kl-cov", "--seeds", "2", "--updates", "2", "--out",
                 str(tmp_path / "audit"), "--quiet", "--set", *micro]) == 0
    assert main(["audit", "--objectives", "dpo", "--out", str(tmp_path / "bad"), "--quiet", "--set", *micro]) == 2


def test_trl_engine_trains_cispo(tmp_path):
    """`train --engine trl --objective cispo`: TRL's GRPOTrainer with the registry's cispo, its metrics logged."""
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    warnings.filterwarnings("ignore", category=FutureWarning)
    model = build_tiny_model(tmp_path / "tiny", "llama", layers=1, width=32, heads=2)
    out = tmp_path / "trl"
    assert main(["train", "--engine", "trl", "--model", f"hf:{model}", "--objective", "cispo", "--out", str(out),
                 "--quiet", "--set", "steps=1", "prompts_per_step=2", "group_size=4", "max_new=4", "train_level=2",
                 "pool_size=20", "minibatches=1"]) == 0
    rows = read_metrics(out / "metrics.jsonl")
    assert rows and "pg/weight_mean" in rows[0] and "clip/high_frac" in rows[0]


def test_trl_engine_normalises_token_mean_by_tokens():
    """Inside TRL a micro-batch's denominator is the optimizer step's token count for every config that
    aggregates with token-mean (gspo and luspo included: their sequence loss is spread over tokens), else its
    response count; the sequence-level gmpo (no aggregation) counts responses."""
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    from opo_theory.integrations.trl import counts_tokens

    for name in ("gspo", "luspo", "cispo", "grpo"):
        spec = get(name)
        assert counts_tokens(spec, spec.make_config(aggregation="token-mean"))
        assert not counts_tokens(spec, spec.make_config(aggregation="seq-mean-token-mean"))
    assert not counts_tokens(get("gmpo"), get("gmpo").make_config())
    assert not counts_tokens(get("opo"), get("opo").make_config())


def test_trl_engine_luspo_token_mean_matches_trl_through_the_window_normaliser(tmp_path):
    """RegistryGRPOTrainer's micro-batch loss (denominator from the optimizer step's window, as in training) for
    luspo with token-mean equals TRL's loss_type='dapo' with importance_sampling_level='sequence' (loss, gradient)."""
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    import sys
    from pathlib import Path

    from trl import GRPOTrainer

    from opo_theory.lm.models.tiny_hf import build_tiny_model

    sys.path.insert(0, str(Path(__file__).parent))
    import trl_worker

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    model_dir = build_tiny_model(tmp_path / "tiny", "llama", layers=1, width=32, heads=2)
    tr = trl_worker.make_trainer(model_dir, tmp_path, 16, 1, objective="luspo", iterations=1, diagnostics=False,
                                 confidence_metrics=False, objective_config={"aggregation": "token-mean",
                                                                             "adv_eps": 1e-4})
    model = tr.model.train()
    tr.current_gradient_accumulation_steps = 1
    rows = [{"prompt": p, "answer": a} for p, a in zip(tr.train_dataset["prompt"][:4], tr.train_dataset["answer"][:4],
                                                       strict=True) for _ in range(trl_worker.GROUP)]
    inputs = tr._generate_and_score_completions(rows)
    tr._set_window_sizes([inputs])                       # the optimizer step's tokens and rows, as in training
    with torch.no_grad():
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        logp = tr._get_per_token_logps_and_entropies(model, ids, att, inputs["completion_ids"].size(1))[0]
    inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(logp.shape, generator=torch.Generator().manual_seed(0))
    params = [p for p in model.parameters() if p.requires_grad]
    ours = tr._compute_loss(model, inputs)
    g_ours = torch.autograd.grad(ours, params)
    tr.loss_type, tr.importance_sampling_level, tr.epsilon_low, tr.epsilon_high = "dapo", "sequence", 0.2, 0.2
    theirs = GRPOTrainer._compute_loss(tr, model, inputs)
    g_theirs = torch.autograd.grad(theirs, params)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-9, abs=1e-12)
    for a, b in zip(g_ours, g_theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_field_losses_artifact_judges_by_intervals():
    """paper_repro/field-losses.py: 'lower'/'higher' only when the 95% intervals do not overlap; the toy's
    classification lists a loss as keeping the gradient only if it is non-zero at every GRPO-zeroed point."""
    from opo_theory.figures.catalogue import load_artifact

    art = load_artifact("field-losses")
    iv = lambda m, lo, hi: {"mean": m, "low": lo, "high": hi}
    assert art.compare(iv(0.0, 0.0, 0.0), iv(0.4, 0.3, 0.5)) == "lower"
    assert art.compare(iv(0.2, 0.1, 0.31), iv(0.4, 0.3, 0.5)) == "not separated"
    assert art.compare(iv(0.8, 0.6, 0.9), iv(0.4, 0.3, 0.5)) == "higher"
    import numpy as np
    p = np.array([0.5, 0.7, 0.9])
    curves = {"grpo": {"delta": np.array([1.0, 0.0, 0.0]), "logit": np.ones(3)},
              "a": {"delta": np.array([1.0, 0.5, 0.2]), "logit": np.ones(3)},
              "b": {"delta": np.array([1.0, 0.5, 0.0]), "logit": np.ones(3)}}
    s = art.regime_summary(curves, p)
    verdict = art.classify({"fixed-anchor": s, "re-anchored": s})
    assert verdict["keeps_where_grpo_clip_zeroes"] == ["a"] and verdict["partly_where_grpo_clip_zeroes"] == ["b"]
