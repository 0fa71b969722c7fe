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


# ------------------------------------------------------------------ streaming: no flat or float64 gradient copies
def test_gradient_sums_in_blocks_equal_the_flat_float64_reference(monkeypatch):
    """Blocks smaller than a parameter (and a None gradient) give the sums of the flat float64 vectors."""
    import opo_theory.diagnostics as D

    g = torch.Generator().manual_seed(3)
    total = [torch.randn(7, 5, generator=g), None, torch.randn(11, generator=g)]
    drive = [torch.randn(7, 5, generator=g), torch.randn(4, generator=g), None]
    flat = lambda xs, shapes: torch.cat([(x if x is not None else torch.zeros(s)).reshape(-1).double()
                                         for x, s in zip(xs, shapes)])
    shapes = [(7, 5), (4,), (11,)]
    t, d = flat(total, shapes), flat(drive, shapes)
    monkeypatch.setattr(D, "BLOCK", 3)
    s = D.gradient_sums(total, drive, part=True)
    r = t - d
    for key, ref in {"tt": t @ t, "oo": d @ d, "ot": d @ t, "rr": r @ r, "or": d @ r}.items():
        assert math.isclose(s[key], float(ref), rel_tol=1e-12), key


def test_update_gradient_metrics_reads_the_callers_backward_and_equals_gradient_metrics():
    """The trainer's order (its own backward, then the diagnostics from .grad + autograd.grad) gives the same
    numbers as gradient_metrics, leaves .grad as the backward made it, and frees the graph at the end."""
    from opo_theory.diagnostics import extra_gradients, update_gradient_metrics

    batch, w = linear_policy_batch()
    loss, parts = O.get("opo")(batch)
    approx = O.get("opo-exact")(batch)[0]
    ref = gradient_metrics(loss, parts, [w], split=True, approx=approx)
    g_ref = w.grad.clone()
    w.grad = None
    batch, _ = linear_policy_batch(w=w)
    loss, parts = O.get("opo")(batch)
    approx = O.get("opo-exact")(batch)[0]
    loss.backward(retain_graph=bool(extra_gradients(parts, True, approx)))
    out = update_gradient_metrics([w], parts, split=True, approx=approx)
    assert torch.equal(w.grad, g_ref) and set(out) == set(ref) and len(out) == 5
    for k in ref:
        assert math.isclose(out[k], ref[k], rel_tol=1e-12, abs_tol=1e-15), k
    try:
        loss.backward()
    except RuntimeError:
        pass                 # the last extra gradient freed the graph
    else:
        raise AssertionError("graph still held after the diagnostics")


def test_token_gradient_hook_equals_autograd_grad():
    from opo_theory.lm.training.confidence import TokenGrad

    batch, w = linear_policy_batch()
    loss, parts = O.get("opo")(batch)
    ref = torch.autograd.grad(loss, batch.logp, retain_graph=True)[0]
    caught = TokenGrad(batch.logp)
    loss.backward(retain_graph=True)
    torch.autograd.grad(parts["loss/drive"], w)          # a later pass through logp does not overwrite it
    assert torch.equal(caught.value, ref)


def test_step_and_measure_is_the_same_adamw_step_and_measures_it():
    """Stepping a block of parameters at a time is bitwise the step taken at once (fused AdamW, decay groups,
    a parameter without gradient); the returned norm is ||theta_after - theta_before||."""
    import copy

    from opo_theory.lm.models.backend import param_groups
    from opo_theory.lm.training.confidence import step_and_measure

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(6, 9), torch.nn.LayerNorm(9), torch.nn.Linear(9, 3))]
    nets.append(copy.deepcopy(nets[0]))
    opts = [torch.optim.AdamW(param_groups(n, 0.1), lr=0.01, fused=True) for n in nets]
    for _ in range(3):
        x = torch.randn(5, 6)
        for n in nets:
            n.zero_grad(set_to_none=True)
            n(x).pow(2).mean().backward()
            n[1].bias.grad = None                      # an unused parameter
        before = [p.detach().clone() for p in nets[1].parameters()]
        opts[0].step()
        params = list(nets[1].parameters())
        moved = step_and_measure(opts[1], params, block=20)      # several blocks
        ref = math.sqrt(sum(float((p.detach() - b).double().pow(2).sum()) for p, b in zip(params, before)))
        assert math.isclose(moved, ref, rel_tol=1e-6) and moved > 0      # update_norm: float32 per tensor
        assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters()))
        assert all((a.grad is None) == (b.grad is None) for a, b in zip(nets[0].parameters(), params))


def test_trainer_takes_the_diagnostics_once_per_step_without_changing_the_training(tmp_path, monkeypatch):
    """Full diagnostics vs none: bitwise the same weights and the same shared metrics (the diagnostics only
    read); update_gradient_metrics runs once per step although each step makes 2 x 2 updates."""
    import opo_theory.lm.training.trainer as T
    import opo_theory.lm.training.update as U
    from opo_theory.lm.training.config import make_config

    calls = []
    real = U.update_gradient_metrics
    monkeypatch.setattr(U, "update_gradient_metrics", lambda *a, **k: calls.append(1) or real(*a, **k))
    micro = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=0", "pool_size=80", "val_size=8",
             "train_level=1", "ood_level=2", "prompts_per_step=4", "group_size=4", "max_new=4", "lr=0.01",
             "ppo_epochs=2", "minibatches=2", "val_every=100", f"sft_cache={tmp_path / 'sft'}"]
    rows, weights = [], []
    for extra in ([], ["grad_split=false", "approx_grad=false", "trust_region_metrics=false"]):
        cfg = make_config("opo", "cpu-tiny", 0, micro + extra, steps=2)
        trainer = T.start_run(cfg, tmp_path / str(len(extra)), quiet=True)
        rows.append([trainer.rl_step() for _ in range(2)])
        weights.append([p.detach().clone() for p in trainer.model.parameters()])
    assert len(calls) == 4                                        # 2 runs x 2 steps
    assert all(torch.equal(a, b) for a, b in zip(*weights))
    full, lean = rows
    assert "grad/norm_drive" in full[0] and "approx/grad_cos" in full[0] and "grad/norm_drive" not in lean[0]
    for f, ln in zip(full, lean):
        for k in set(f) & set(ln):
            if not k.startswith(("time/", "throughput/")):
                assert f[k] == ln[k] or (math.isnan(f[k]) and math.isnan(ln[k])), k
