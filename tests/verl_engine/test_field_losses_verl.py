"""The field's losses (opo_theory.objectives.field) against verl 0.9.1's own policy losses, looked up with
get_policy_loss_fn and called on verl's FSDPActorConfig: loss and gradient w.r.t. log_prob, in float64."""

import pytest
import torch
from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage, get_policy_loss_fn
from verl.workers.config import FSDPActorConfig, PolicyLossConfig

from opo_theory.integrations import verl as plugin
from opo_theory.objectives import PolicyBatch, get

G, N, T = 5, 4, 7
TOL = dict(rtol=1e-9, atol=1e-12)


def make_data(seed=0, scale=0.8):
    """Rows by group, one fully masked row, rewards with ties, log-ratios past ±0.2 (and token probabilities
    spread over (0, 1), for DPPO's probability checks)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (G * N,), generator=g)
    lengths[3] = 0
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    rewards = torch.randint(0, 3, (G * N,), generator=g).double()
    logp_old = torch.log(torch.rand(G * N, T, generator=g, dtype=torch.float64).clamp(0.02, 0.98))
    logp = (logp_old + scale * torch.randn(G * N, T, generator=g, dtype=torch.float64)).clamp(max=-1e-4)
    return dict(rewards=rewards, mask=mask, logp_old=logp_old, logp=logp, group=torch.arange(G).repeat_interleave(N))


def token_rewards(d):
    out = torch.zeros_like(d["mask"])
    last = (d["mask"].sum(-1).long() - 1).clamp_min(0)
    out[torch.arange(len(last)), last] = d["rewards"]
    return out


def registry(name, hp, d):
    logp = d["logp"].clone().requires_grad_(True)
    batch = PolicyBatch(logp=logp, logp_old=d["logp_old"], mask=d["mask"], group=d["group"], rewards=d["rewards"])
    loss, metrics = get(name)(batch, get(name).make_config(**hp))
    loss.backward()
    return loss.detach(), logp.grad, {k: float(v.detach()) for k, v in metrics.items()}


def verl(loss_mode, actor_kw, policy_kw, d, agg):
    """verl's loss on the whole batch (advantages from verl's GRPO estimator) and its gradient."""
    adv, _ = compute_grpo_outcome_advantage(token_rewards(d), d["mask"], d["group"].numpy())
    actor = FSDPActorConfig(strategy="fsdp", rollout_n=N, ppo_mini_batch_size=G, ppo_micro_batch_size_per_gpu=2,
                            loss_agg_mode=agg, policy_loss=PolicyLossConfig(loss_mode=loss_mode, **policy_kw),
                            **actor_kw)
    actor.global_batch_info.update({"dp_size": 1, "global_batch_size": G * N,
                                    "batch_num_tokens": int(d["mask"].sum()), "loss_scale_factor": None})
    logp = d["logp"].clone().requires_grad_(True)
    loss, metrics = get_policy_loss_fn(loss_mode)(old_log_prob=d["logp_old"], log_prob=logp, advantages=adv,
                                                  response_mask=d["mask"].bool(), loss_agg_mode=agg, config=actor)
    loss.backward()
    return loss.detach(), logp.grad, metrics


EPS = {"clip_ratio": 0.2, "clip_ratio_low": 0.2, "clip_ratio_high": 0.2}
# (registry entry, its config, verl loss_mode, ActorConfig fields, PolicyLossConfig fields, aggregation,
#  {registry metric: verl metric})
CASES = [
    ("cispo", {"convention": "verl"}, "cispo", EPS, {}, "token-mean", {"ratio/capped_frac": "actor/pg_clipfrac"}),
    ("cispo", {"convention": "verl", "eps_low": 0.1, "eps_high": 0.3, "aggregation": "seq-mean-token-sum"}, "cispo",
     {"clip_ratio_low": 0.1, "clip_ratio_high": 0.3}, {}, "seq-mean-token-sum", {}),
    ("sapo", {"log_ratio_clamp": 20.0, "adv_eps": 1e-6}, "sapo", {}, {}, "token-mean", {}),   # verl forces seq-mean
    ("sapo", {"log_ratio_clamp": 20.0, "adv_eps": 1e-6, "tau_pos": 2.0, "tau_neg": 3.0}, "sapo",
     {"tau_pos": 2.0, "tau_neg": 3.0}, {}, "seq-mean-token-mean", {}),
    ("gpg", {}, "gpg", {}, {}, "token-mean", {}),
    ("gpg", {"aggregation": "seq-mean-token-sum-norm"}, "gpg", {}, {}, "seq-mean-token-sum-norm", {}),
    ("dro", {"beta": 0.3}, "dro", {}, {"dro_beta": 0.3}, "token-mean", {}),
    ("dro", {"beta": 2.0, "aggregation": "seq-mean-token-mean"}, "dro", {}, {"dro_beta": 2.0}, "seq-mean-token-mean", {}),
    ("dppo-tv", {}, "dppo_tv", EPS, {}, "token-mean",
     {"pg/weight_zero_frac": "actor/pg_clipfrac", "ratio/truncated_frac": "actor/pg_clipfrac_lower"}),
    ("dppo-tv", {"eps_low": 0.05, "eps_high": 0.1, "trunc": 1.5}, "dppo_tv",
     {"clip_ratio_low": 0.05, "clip_ratio_high": 0.1, "clip_ratio_c": 1.5}, {}, "token-mean",
     {"pg/weight_zero_frac": "actor/pg_clipfrac", "ratio/truncated_frac": "actor/pg_clipfrac_lower"}),
    ("dppo-kl", {}, "dppo_kl", EPS, {}, "token-mean",
     {"pg/weight_zero_frac": "actor/pg_clipfrac", "ratio/truncated_frac": "actor/pg_clipfrac_lower"}),
    ("dppo-kl", {"eps_low": 0.02, "eps_high": 0.05, "aggregation": "seq-mean-token-mean"}, "dppo_kl",
     {"clip_ratio_low": 0.02, "clip_ratio_high": 0.05}, {}, "seq-mean-token-mean", {}),
    ("gmpo", {}, "geo_mean", EPS, {}, "token-mean", {}),
    ("gmpo", {"eps_low": 0.4, "eps_high": 0.4}, "geo_mean", {"clip_ratio_low": 0.4, "clip_ratio_high": 0.4}, {},
     "token-mean", {}),
    ("kl-cov", {}, "kl_cov", {}, {}, "token-mean", {}),
    ("kl-cov", {"ratio": 0.1, "coef": 1.0, "aggregation": "seq-mean-token-mean"}, "kl_cov", {},
     {"kl_cov_ratio": 0.1, "ppo_kl_coef": 1.0}, "seq-mean-token-mean", {}),
    ("clip-cov", {"eps_low": 0.2, "eps_high": 0.2}, "clip_cov", EPS, {}, "token-mean", {}),
    # TRL's losses that verl ships under another name: luspo = verl's gspo (token form of the sequence ratio) with
    # seq-mean-token-sum; bnpo = verl's vanilla (dual clip always on) with token-mean
    ("luspo", {"adv_eps": 1e-6}, "gspo", EPS, {}, "seq-mean-token-sum", {}),
    ("bnpo", {"adv_eps": 1e-6, "dual_clip": 3.0}, "vanilla", EPS, {}, "token-mean", {}),
    ("clip-cov", {"ratio": 0.1, "cov_lb": 0.0, "cov_ub": 2.0}, "clip_cov", EPS,
     {"clip_cov_ratio": 0.1, "clip_cov_lb": 0.0, "clip_cov_ub": 2.0}, "token-mean", {"cov/zeroed_frac": "actor/pg_clipfrac"}),
]


@pytest.mark.parametrize("name,hp,mode,actor_kw,policy_kw,agg,metric_names", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("seed,scale", [(0, 0.8), (1, 0.05)])
def test_verl_conformance(name, hp, mode, actor_kw, policy_kw, agg, metric_names, seed, scale):
    """Registry entry == verl's policy loss (loss, d/dlog_prob, shared metrics); clip_cov's random pick: the
    global generator seeded identically before each side (the registry's seed=None uses it, as verl)."""
    d = make_data(seed, scale)
    cfg = {"adv_eps": 1e-6, **hp} if name in ("cispo", "sapo") else hp     # TRL's entries default to TRL's 1e-4
    if "aggregation" not in hp and name not in ("gmpo", "sapo"):
        assert get(name).make_config(**cfg).aggregation == agg
    torch.manual_seed(11)
    ours, g_ours, m_ours = registry(name, cfg, d)
    torch.manual_seed(11)
    theirs, g_theirs, m_theirs = verl(mode, actor_kw, policy_kw, d, agg)
    torch.testing.assert_close(ours, theirs, **TOL)
    torch.testing.assert_close(g_ours, g_theirs, **TOL)
    assert g_ours.abs().sum() > 0
    for mine, theirs_key in metric_names.items():
        assert m_ours[mine] == pytest.approx(m_theirs[theirs_key], rel=1e-6, abs=1e-9), (mine, theirs_key)


def test_clip_cov_zeroes_tokens_in_the_compared_case():
    """The clip_cov comparison is not vacuous: some tokens' losses are zeroed, and the pick is random."""
    d = make_data(0, 0.8)
    hp = {"ratio": 0.1, "cov_lb": 0.0, "cov_ub": 2.0}
    picks = set()
    for s in range(4):
        torch.manual_seed(s)
        _, grad, m = registry("clip-cov", hp, d)
        assert m["cov/zeroed_frac"] > 0
        picks.add(tuple((grad == 0).flatten().tolist()))
    assert len(picks) > 1


@pytest.mark.parametrize("name,hp", [("vespo", {}), ("vespo", {"k_pos": 1.0, "lambda_neg": 0.5}),
                                     ("cispo", {"eps_max": 1.3}), ("cispo", {"convention": "verl", "eps_low": 0.1})])
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_plugin_field_losses_equal_the_registry_under_micro_batching(name, hp, agg):
    """opo_theory.vespo / opo_theory.cispo (TRL's losses verl lacks) through get_policy_loss_fn, the batch split
    into micro-batches with verl's global batch information: summed losses and gradients equal the registry's
    on the whole batch with verl's GRPO advantages."""
    d = make_data(2, 0.8)
    adv, _ = compute_grpo_outcome_advantage(token_rewards(d), d["mask"], d["group"].numpy())
    logp = d["logp"].clone().requires_grad_(True)
    batch = PolicyBatch(logp=logp, logp_old=d["logp_old"], mask=d["mask"], group=d["group"],
                        advantages=adv[:, 0].clone())
    want, _ = get(name)(batch, get(name).make_config(**hp, aggregation=agg, norm_len=float(T)))
    (want_grad,) = torch.autograd.grad(want, logp)
    actor = FSDPActorConfig(strategy="fsdp", rollout_n=N, ppo_mini_batch_size=G, ppo_micro_batch_size_per_gpu=2,
                            loss_agg_mode=agg, policy_loss=plugin.FieldLossConfig(loss_mode=plugin.PREFIX + name, **hp))
    actor.global_batch_info.update({"dp_size": 1, "global_batch_size": G * N,
                                    "batch_num_tokens": int(d["mask"].sum()), "loss_scale_factor": T})
    total, grad = torch.zeros((), dtype=torch.float64), torch.zeros(G * N, T, dtype=torch.float64)
    for chunk in torch.split(torch.randperm(G * N, generator=torch.Generator().manual_seed(3)), 6):
        lp = d["logp"][chunk].clone().requires_grad_(True)
        loss, metrics = get_policy_loss_fn(plugin.PREFIX + name)(
            old_log_prob=d["logp_old"][chunk], log_prob=lp, advantages=adv[chunk],
            response_mask=d["mask"][chunk].bool(), loss_agg_mode=agg, config=actor)
        loss.backward()
        total += loss.detach()
        grad[chunk] += lp.grad
        assert "actor/pg/weight_mean" in metrics
    torch.testing.assert_close(total, want.detach(), **TOL)
    torch.testing.assert_close(grad, want_grad, **TOL)
