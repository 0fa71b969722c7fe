"""Diagnostics: the drive/regularizer split, Delta moments, Lemma A.1 flags, efficiency, non-finite norms."""

import math

import torch

from opo_theory import objectives as O
from opo_theory.diagnostics import batch_metrics, gradient_metrics, response_efficiency


def linear_policy_batch(seed=0, B=8, T=5, F=3, w=None):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(F, generator=g, dtype=torch.float64).requires_grad_()
    w = w0 if w is None else w
    feats = torch.randn(B, T, F, generator=g, dtype=torch.float64)
    logp = feats @ w * 0.1 - 1
    batch = O.PolicyBatch(logp=logp, logp_old=logp.detach() + 0.05 * torch.randn(B, T, generator=g, dtype=torch.float64),
                          mask=torch.ones(B, T, dtype=torch.float64), group=torch.arange(B) // 4,
                          rewards=torch.tensor([1.0, 0, 1, 0, 0, 0, 1, 1], dtype=torch.float64))
    return batch, w


def test_split_adds_up_and_matches_separate_backwards():
    batch, w = linear_policy_batch()
    loss, metrics = O.get("opo")(batch)
    (g_drive,) = torch.autograd.grad(metrics["loss/drive"], w, retain_graph=True)
    (g_reg,) = torch.autograd.grad(metrics["loss/reg"], w, retain_graph=True)
    assert "grad/norm_drive" not in gradient_metrics(*O.get("opo")(linear_policy_batch(w=w)[0]), [w])  # opt-in
    w.grad = None
    out = gradient_metrics(loss, metrics, [w], split=True)
    assert torch.allclose(w.grad, g_drive + g_reg)
    assert math.isclose(out["grad/norm"], float((g_drive + g_reg).norm()), rel_tol=1e-9)
    assert math.isclose(out["grad/norm_drive"], float(g_drive.norm()), rel_tol=1e-9)
    assert math.isclose(out["grad/norm_reg"], float(g_reg.norm()), rel_tol=1e-9)
    cos = float(g_drive @ g_reg / (g_drive.norm() * g_reg.norm()))
    assert math.isclose(out["grad/cos_drive_reg"], cos, rel_tol=1e-9)


def test_no_split_for_objectives_without_parts_and_grad_accumulates_like_backward():
    batch, w = linear_policy_batch()
    loss, metrics = O.get("grpo")(batch)
    out = gradient_metrics(loss, metrics, [w], split=True)
    assert "grad/norm_drive" not in out and out["grad/norm"] > 0
    before = w.grad.clone()
    loss2, m2 = O.get("grpo")(linear_policy_batch(w=w)[0])
    out2 = gradient_metrics(loss2, m2, [w])
    assert torch.allclose(w.grad, 2 * before) and math.isclose(out2["grad/norm"], out["grad/norm"])


def test_non_finite_gradient_norm_is_reported():
    w = torch.tensor([1.0], requires_grad=True)
    loss = (w * torch.tensor([math.inf])).sum()
    out = gradient_metrics(loss, {}, [w])
    assert not math.isfinite(out["grad/norm"])


def test_batch_metrics_moments_and_lemma_flag():
    batch, _ = linear_policy_batch()
    m = batch_metrics(batch, "opo", O.get("opo").make_config())
    delta = ((batch.logp - batch.logp_old) * batch.mask).sum(-1).detach()
    assert math.isclose(m["delta/m3"], float((delta**3).mean()), rel_tol=1e-9)
    assert math.isclose(m["delta/abs_max"], float(delta.abs().max()))
    assert m["approx/lemma_holds"] == 1.0 and 0 < m["weights/ess"] <= 1
    assert math.isclose(m["kl/k3"], float((torch.expm1(-(batch.logp - batch.logp_old)) + (batch.logp - batch.logp_old)).mean().detach()), rel_tol=1e-9)
    far = batch.with_(logp_old=batch.logp_old - 1.0)       # |Delta| = 5 >= 1: the lemma does not apply
    assert math.isnan(batch_metrics(far)["approx/lemma_holds"])


def test_response_efficiency():
    assert response_efficiency(2.0, torch.tensor([-1.0, 1.0])) == 2.0
    assert math.isnan(response_efficiency(2.0, torch.tensor([0.5, 0.5])))
