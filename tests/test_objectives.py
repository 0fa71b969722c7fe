"""The objective registry: gradients, agreement with sympy, invariances, limits, hand values, fuzz."""

import math

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from opo_theory import objectives as O
from opo_theory.geometry import objectives as S
from opo_theory.objectives.field import FIELD_LOSSES, STOP_GRADIENT
from opo_theory.objectives.opo import bounded_target
from opo_theory.objectives.shaping import dynamic_sampling_filter, overlong_penalty


@pytest.fixture(autouse=True)
def float64_default():
    """float64 for gradcheck, restored afterwards so no other test module sees it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def make_batch(B=6, T=4, G=2, seed=0, scale=0.1, pairs=True, **kw):
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(B, T, generator=g) * 2 - 0.1
    logp = (logp_old + torch.randn(B, T, generator=g) * scale).requires_grad_()
    mask = torch.ones(B, T)
    mask[0, -1] = 0
    fields = dict(logp=logp, logp_old=logp_old, mask=mask,
                  group=torch.arange(B) // (B // G), rewards=torch.randn(B, generator=g),
                  logp_ref=logp_old - 0.05, entropy=torch.rand(B, T, generator=g))
    if pairs:
        fields.update(chosen=torch.tensor([0, 3]), rejected=torch.tensor([1, 4]))
    fields.update(kw)
    return O.PolicyBatch(**fields)


def grad_of(name, batch, **cfg):
    loss, _ = O.get(name)(batch, O.get(name).make_config(**cfg))
    (g,) = torch.autograd.grad(loss, batch.logp)
    return loss.detach(), g


@pytest.mark.parametrize("name", O.available())
def test_gradcheck(name):
    batch = make_batch(scale=0.05)
    # GSPO's default clip range is 4e-4 wide: widen it so gradcheck is not sitting on a kink
    cfg = O.get(name).make_config(**({"eps_low": 0.5, "eps_high": 0.5} if name == "gspo" else {}))
    if name in STOP_GRADIENT:   # their gradient is tested against TRL/verl (tests/test_field_losses.py, verl_engine)
        pytest.skip(f"{name}'s gradient uses a detached weight: by definition not the derivative of its value")

    def f(logp):
        return O.get(name)(batch.with_(logp=logp), cfg)[0]

    assert torch.autograd.gradcheck(f, (batch.logp,), eps=1e-6, atol=1e-5)


def test_registry_lists_every_issue_objective():
    assert set(O.available()) == {"opo", "opo-exact", "gopo", "gopo-bounded", "grpo", "dr-grpo",
                                  "dapo", "gspo", "ppo-kl", "dpo", "ipo", "chipo", "sft", *FIELD_LOSSES}
    with pytest.raises(ValueError, match="unknown objective 'ppo'; allowed: bnpo, chipo"):
        O.get("ppo")
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['muu'\]"):
        O.get("opo").make_config(muu=1)


# --- agreement with the sympy twin (opo_theory.geometry.objectives) -----------------------------

def one_token_batch(delta, adv=None, **kw):
    n = len(delta)
    logp_old = torch.full((n, 1), -1.0)
    logp = (logp_old + torch.tensor(delta)[:, None]).requires_grad_()
    return O.PolicyBatch(logp=logp, logp_old=logp_old, mask=torch.ones(n, 1),
                         group=torch.zeros(n, dtype=torch.long),
                         advantages=None if adv is None else torch.tensor(adv), **kw)


@pytest.mark.parametrize("name, sym", [("opo", S.opo_surrogate), ("opo-exact", S.opo_exact)])
def test_opo_matches_sympy(name, sym):
    rng = np.random.default_rng(1)
    g, d, mu = sp.symbols("g d mu")
    f = sp.lambdify((g, d, mu), sym(g, d, mu))
    df = sp.lambdify((g, d, mu), sp.diff(sym(g, d, mu), d))
    for _ in range(10):
        delta = rng.normal(size=5) * 0.4
        adv = rng.normal(size=5)
        adv -= adv.mean()                 # centred: the gopo geometry's drive is then A itself
        m = rng.uniform(0.2, 3)
        batch = one_token_batch(delta, adv)
        loss, grad = grad_of(name, batch, mu=m, geometry="gopo")
        assert abs(loss - np.mean(f(adv, delta, m))) < 1e-10
        assert np.allclose(grad[:, 0].numpy(), df(adv, delta, m) / 5, atol=1e-10)


def test_ppo_kl_matches_sympy_inside_the_clip_range():
    rng = np.random.default_rng(2)
    a, d, x, beta = sp.symbols("a d x beta")
    for est in ("k1", "k2", "k3"):
        expr = S.kl_pg(a, d, x, beta, est)
        dx = sp.diff(expr.subs(x, sp.Symbol("r") - d), d).subs(sp.Symbol("r"), x + d)  # x = ref - logp
        f, df = sp.lambdify((a, d, x, beta), expr), sp.lambdify((a, d, x, beta), dx)
        delta = rng.normal(size=4) * 0.1
        adv = rng.normal(size=4)
        b = one_token_batch(delta, adv, logp_ref=torch.full((4, 1), -1.0) + torch.tensor(rng.normal(size=(4, 1)) * 0.2))
        xv = (b.logp_ref - b.logp).detach()[:, 0].numpy()
        loss, grad = grad_of("ppo-kl", b, beta=0.3, kl=est, eps_low=10.0, eps_high=10.0,
                             aggregation="token-mean")
        assert abs(loss - np.mean(f(adv, delta, xv, 0.3))) < 1e-10
        assert np.allclose(grad[:, 0].numpy(), df(adv, delta, xv, 0.3) / 4, atol=1e-10)


@pytest.mark.parametrize("name, sym", [("dpo", S.dpo), ("ipo", S.ipo), ("chipo", None)])
def test_pairwise_match_sympy(name, sym):
    rng = np.random.default_rng(3)
    delta = rng.normal(size=4) * 0.3
    b = one_token_batch(delta, rewards=torch.zeros(4), chosen=torch.tensor([0, 2]),
                        rejected=torch.tensor([1, 3]))
    beta = 0.7
    loss, grad = grad_of(name, b, beta=beta, seq_logratio="sum")
    dw, dl = sp.symbols("dw dl")
    expr = S.chipo(dw, dl, beta) if name == "chipo" else sym(dw - dl, beta)
    f = sp.lambdify((dw, dl), expr)
    fw, fl = sp.lambdify((dw, dl), sp.diff(expr, dw)), sp.lambdify((dw, dl), sp.diff(expr, dl))
    pairs = [(0, 1), (2, 3)]
    assert abs(loss - np.mean([f(delta[i], delta[j]) for i, j in pairs])) < 1e-10
    for i, j in pairs:
        assert abs(grad[i, 0] - fw(delta[i], delta[j]) / 2) < 1e-10
        assert abs(grad[j, 0] - fl(delta[i], delta[j]) / 2) < 1e-10


# --- invariances ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", O.available())
def test_masked_positions_change_nothing(name):
    b = make_batch()
    noisy_old = b.logp_old.clone()
    noisy_old[0, -1] = 37.0
    noisy = b.logp.detach().clone()
    noisy[0, -1] = -80.0
    b2 = b.with_(logp=noisy.requires_grad_(), logp_old=noisy_old)
    l1, g1 = grad_of(name, b)
    l2, g2 = grad_of(name, b2)
    assert torch.allclose(l1, l2) and torch.allclose(g1[b.mask.bool()], g2[b.mask.bool()])
    assert g2[0, -1] == 0


@pytest.mark.parametrize("name", [n for n in O.available() if O.get(n).kind != "pairwise"])
def test_permuting_within_a_group_permutes_only_the_gradient(name):
    b = make_batch(pairs=False)
    perm = torch.tensor([2, 0, 1, 5, 3, 4])
    bp = b.select(perm).with_(logp=b.logp.detach()[perm].requires_grad_())
    l1, g1 = grad_of(name, b)
    l2, g2 = grad_of(name, bp)
    assert torch.allclose(l1, l2) and torch.allclose(g1[perm], g2)


@pytest.mark.parametrize("name", ["opo", "opo-exact", "gopo", "grpo", "dr-grpo", "dapo", "gspo", "ppo-kl"])
def test_micro_batches_with_the_global_normalizer_give_the_same_gradient(name):
    b = make_batch(B=12, G=4, pairs=False)
    l_full, g_full = grad_of(name, b)
    token_mean = O.get(name).make_config().__dict__.get("aggregation") == "token-mean"
    normalizer = float(b.lengths.sum()) if token_mean else float(b.n_responses)
    total, grads = 0.0, torch.zeros_like(g_full)
    for part in (torch.arange(0, 6), torch.arange(6, 12)):          # whole groups per micro-batch
        sub = b.select(part).with_(logp=b.logp.detach()[part].requires_grad_(), normalizer=normalizer)
        loss, g = grad_of(name, sub)
        total += loss
        grads[part] = g
    assert torch.allclose(total, l_full) and torch.allclose(grads, g_full)


# --- limits and identities ----------------------------------------------------------------------

def test_dapo_with_symmetric_clip_is_token_mean_grpo():
    b = make_batch(scale=0.4, pairs=False)
    assert torch.allclose(grad_of("dapo", b, eps_high=0.2)[1],
                          grad_of("grpo", b, aggregation="token-mean")[1])
    assert torch.allclose(grad_of("dapo", b, eps_high=0.2)[0], grad_of("grpo", b, aggregation="token-mean")[0])


def test_gspo_on_one_token_responses_is_grpo():
    b = one_token_batch(list(np.linspace(-0.5, 0.5, 6)), rewards=torch.tensor([1.0, 0, 1, 0, 1, 1]))
    for eps in (0.2, 3e-4):
        l1, g1 = grad_of("gspo", b, eps_low=eps, eps_high=eps)
        l2, g2 = grad_of("grpo", b, eps_low=eps, eps_high=eps)
        assert torch.allclose(l1, l2) and torch.allclose(g1, g2)


def test_gopo_bounded_equals_gopo_when_no_clipping():
    b = make_batch(pairs=False, rewards=torch.tensor([0.2, -0.1, 0.0, 0.3, 0.1, -0.2]))
    l1, g1 = grad_of("gopo-bounded", b, mu=0.5)
    l2, g2 = grad_of("gopo", b, mu=0.5)
    assert torch.allclose(l1, l2) and torch.allclose(g1, g2)
    b_far = b.with_(rewards=torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0]))   # A = -2/3 < -mu in group 1
    assert not torch.allclose(grad_of("gopo-bounded", b_far, mu=0.5)[1], grad_of("gopo", b_far, mu=0.5)[1])


def test_bounded_target_reproduces_gopo_worked_example():
    a = torch.tensor([1.0, 0.5, -0.2, -1.3])
    b = one_token_batch([0.0] * 4, list(a))
    v, lam = bounded_target(a - a.mean(), b, 0.5)
    assert abs(lam[0] - 0.8 / 3) < 1e-9 and abs(lam[0] - 0.26667) < 5e-6
    assert abs(v.mean()) < 1e-12 and v[3] == -1


def test_opo_and_exact_agree_to_second_order_below_lemma_a1():
    rng = np.random.default_rng(4)
    adv = rng.normal(size=6)
    gaps = []
    for d in (0.1, 0.05, 0.025):
        delta = rng.uniform(-1, 1, size=6) * d
        b = one_token_batch(delta, adv - adv.mean())
        exact = grad_of("opo-exact", b, geometry="gopo")[0]
        surr = grad_of("opo", b, geometry="gopo")[0]
        dinf = np.abs(delta).max()
        gaps.append(float(abs(exact - surr)))
        v = np.expm1(delta)
        assert np.abs(v - delta).max() <= 0.5 * dinf**2 * np.exp(dinf)
        assert np.abs(v**2 - delta**2).max() <= dinf**3 * np.exp(2 * dinf)
    assert gaps[0] / gaps[2] > 8      # halving delta twice shrinks the gap by ~16 (second order)


# --- hand-worked values -------------------------------------------------------------------------

def test_hand_worked_grpo_dapo_gspo():
    # two one-token responses in one group, rewards (1, 0): z-scored A = (+1, -1)/sqrt(2) with the
    # field's sample std (n-1: std = sqrt(0.5), as torch.std in TRL and verl), (+1, -1) with the
    # population std 0.5; ratios r = e^0.1 = 1.10517 (not clipped) and e^-0.3 = 0.74082 (< 0.8:
    # clipped for A < 0).
    b = one_token_batch([0.1, -0.3], rewards=torch.tensor([1.0, 0.0]))
    a = 1 / math.sqrt(2)
    # grpo: l1 = -1.10517 a, l2 = -min(-0.74082 a, -0.8 a) = 0.8 a  -> mean = a (-1.10517 + 0.8)/2
    assert abs(grad_of("grpo", b)[0] - a * (-math.exp(0.1) + 0.8) / 2) < 1e-5
    assert abs(grad_of("grpo", b, adv_std="population")[0] - (-math.exp(0.1) + 0.8) / 2) < 1e-5
    # dapo: same tokens, clip 0.2/0.28, token-mean over 2 tokens -> the same value
    assert abs(grad_of("dapo", b)[0] - a * (-math.exp(0.1) + 0.8) / 2) < 1e-5
    # gspo (3e-4/4e-4): s = r for one token; l1 = -min(1.10517, 1.0004) a = -1.0004 a, l2 = 0.9997 a
    assert abs(grad_of("gspo", b)[0] - a * (-1.0004 + 0.9997) / 2) < 1e-5


def test_sample_std_matches_torch_std_per_group():
    # the z-score's 'sample' std is torch.std (n-1) within each group, at any group size
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0, 0.5, 0.5, 3.0])
    group = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    b = one_token_batch([0.0] * 7, rewards=rewards).with_(group=group)
    from opo_theory.objectives.advantages import advantages
    got = advantages(b, "zscore", eps=0.0)
    for gid in (0, 1):
        r = rewards[group == gid]
        assert torch.allclose(got[group == gid], (r - r.mean()) / r.std(), atol=1e-6)


def test_hand_worked_dpo_ipo():
    # one pair, Delta_w = 0.5, Delta_l = -0.5, h = 1, beta = 0.1: dpo = log(1 + e^-0.1) = 0.644397
    b = one_token_batch([0.5, -0.5], rewards=torch.zeros(2), chosen=torch.tensor([0]), rejected=torch.tensor([1]))
    assert abs(grad_of("dpo", b, beta=0.1)[0] - math.log1p(math.exp(-0.1))) < 1e-12
    # ipo with beta = 0.5: (1 - 1/(2*0.5))² = 0
    assert abs(grad_of("ipo", b, beta=0.5, seq_logratio="sum")[0]) < 1e-12


def test_hand_worked_opo():
    # rewards (1, 0) -> centred A = (0.5, -0.5); paper weights exp(0.6 A) = (1.34986, 0.74082),
    # mean 1.04534 -> g = (0.30452, -0.30452); Delta = (0.2, -0.1), mu = 1:
    # L = mean(-g Delta + Delta²/2) = (-0.060904 + 0.02 - 0.030452 + 0.005)/2 = -0.033178
    b = one_token_batch([0.2, -0.1], rewards=torch.tensor([1.0, 0.0]))
    g = (math.exp(0.3) - math.exp(-0.3)) / 2
    expected = (-g * 0.2 + 0.02 - g * 0.1 + 0.005) / 2
    assert abs(grad_of("opo", b, alpha=0.4, mu=1.0)[0] - expected) < 1e-12
    assert abs(expected - (-0.033178)) < 1e-5


def test_exact_enumeration_weights_give_expectations():
    # three arms with probabilities (0.5, 0.3, 0.2): weighted centring uses E_{pi_k}[A]
    b = one_token_batch([0.1, 0.0, -0.2], rewards=torch.tensor([1.0, 0.0, 0.0]),
                        sample_weight=torch.tensor([0.5, 0.3, 0.2]))
    a = torch.tensor([1.0, 0.0, 0.0]) - 0.5
    loss = grad_of("opo", b, geometry="gopo", mu=2.0)[0]
    delta = torch.tensor([0.1, 0.0, -0.2])
    expected = (torch.tensor([0.5, 0.3, 0.2]) * (-a * delta + delta**2)).sum()
    assert torch.allclose(loss, expected)


def test_vectorized_mu_equals_per_group_runs():
    b = make_batch(pairs=False)
    mu = torch.where(b.group == 0, 0.5, 2.0)
    _, g_vec = grad_of("opo", b, mu=mu)
    for grp, m in ((0, 0.5), (1, 2.0)):
        idx = torch.nonzero(b.group == grp).flatten()
        sub = b.select(idx).with_(logp=b.logp.detach()[idx].requires_grad_(), group=torch.zeros(len(idx), dtype=torch.long))
        _, g = grad_of("opo", sub, mu=m)
        assert torch.allclose(g / 2, g_vec[idx])     # each half is averaged over the whole batch


# --- bad input and extremes ---------------------------------------------------------------------

def test_bad_input_errors():
    b = make_batch()
    with pytest.raises(ValueError, match="mu must be a finite number > 0, got 0"):
        O.get("opo").make_config(mu=0)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0.0, 1.0\], got 1.2"):
        O.get("opo").make_config(alpha=1.2)
    with pytest.raises(ValueError, match="unknown sampling geometry 'fancy'"):
        O.get("opo")(b, O.get("opo").make_config(geometry="fancy"))
    with pytest.raises(ValueError, match="logp_old must have the shape of logp"):
        b.with_(logp_old=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="empty masks at rows"):
        b.with_(mask=torch.zeros_like(b.mask))
    with pytest.raises(ValueError, match="logp must be finite"):
        b.with_(logp=torch.full_like(b.logp, math.nan))
    with pytest.raises(ValueError, match="ppo-kl needs batch.logp_ref"):
        O.get("ppo-kl")(b.with_(logp_ref=None))
    with pytest.raises(ValueError, match="pairwise objectives need batch.chosen"):
        O.get("dpo")(b.with_(chosen=None, rejected=None))


@settings(max_examples=25, deadline=None)
@given(delta=st.floats(-50, 50), adv=st.floats(-30, 30), T=st.sampled_from([1, 64, 4096]),
       seed=st.integers(0, 10))
def test_extreme_inputs_give_finite_loss_and_gradient(delta, adv, T, seed):
    g = torch.Generator().manual_seed(seed)
    B = 4
    logp_old = -torch.rand(B, T, generator=g) * 50
    logp = (logp_old + delta * torch.rand(B, T, generator=g).sign()).float().requires_grad_()
    batch = O.PolicyBatch(logp=logp, logp_old=logp_old.float(), mask=torch.ones(B, T),
                          group=torch.tensor([0, 0, 1, 1]), advantages=torch.tensor([adv, -adv, adv, 0.0]).float(),
                          rewards=torch.tensor([adv, -adv, adv, 0.0]).float(),
                          logp_ref=logp_old.float() + 1, chosen=torch.tensor([0]), rejected=torch.tensor([1]))
    for name in O.available():
        loss, _ = O.get(name)(batch)
        (grad,) = torch.autograd.grad(loss, logp)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), name


def test_dapo_utilities():
    b = make_batch(pairs=False, rewards=torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0]))
    kept = dynamic_sampling_filter(b)
    assert kept.n_responses == 3 and (kept.group == 1).all()
    assert dynamic_sampling_filter(b.with_(rewards=torch.ones(6))) is None
    pen = overlong_penalty(torch.tensor([10, 16, 18, 20]), max_len=20, buffer=4)
    assert torch.allclose(pen, torch.tensor([0.0, 0.0, -0.5, -1.0]))
    with pytest.raises(ValueError, match="buffer must be <= max_len"):
        overlong_penalty(torch.tensor([1]), max_len=2, buffer=4)


def test_the_opo_family_is_a_registry_flag_and_the_normalizer_no_hyperparameter():
    import dataclasses

    from opo_theory.objectives.opo import OPOConfig
    family = O.available(has_opo_drive=True)
    assert family == ["gopo", "gopo-bounded", "opo", "opo-exact"]
    assert family == [n for n in O.available() if issubclass(O.get(n).config_cls, OPOConfig)]
    with pytest.raises(ValueError, match="unknown objective flag"):
        O.available(opo_family=True)
    for n in O.available():                       # set by the engines on the batch, never by a user
        assert "normalizer" not in {f.name for f in dataclasses.fields(O.get(n).config_cls)}, n
    b = make_batch(B=12, G=4, pairs=False)
    for bad in (0.0, -1.0, float("nan"), float("inf"), 1e-300, True, "8"):
        with pytest.raises(ValueError, match="normalizer must be a number"):
            b.with_(normalizer=bad)
    half = O.get("opo")(b.with_(normalizer=2.0 * b.n_responses))[0]
    assert torch.allclose(half, O.get("opo")(b)[0] / 2)
