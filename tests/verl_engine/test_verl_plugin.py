"""The opo_theory verl plugin against the registry, through verl's own lookup, dispatch and aggregation."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import (
    compute_grpo_outcome_advantage,
    get_adv_estimator_fn,
    get_policy_loss_fn,
)
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config import FSDPActorConfig

from opo_theory.integrations import verl as plugin
from opo_theory.objectives import PolicyBatch, available, get

G, N, T = 5, 4, 7           # groups, responses per group, response length
TOL = dict(rtol=1e-5, atol=1e-6)
OPO_FAMILY = available(has_opo_drive=True)

CASES = [("opo", {}), ("opo", {"geometry": "gopo", "alpha": 0.3}), ("opo", {"geometry": "wgopo", "mu": 2.0}),
         ("opo", {"seq_logratio": "mean", "center": "batch", "delta_clamp": 0.5}),
         ("opo-exact", {"alpha": 0.7}), ("gopo", {}), ("gopo-bounded", {"mu": 0.3}),
         ("gopo-bounded", {"mu": 5.0, "seq_logratio": "sum", "delta_clamp": None})]


def make_data(seed=0, delta_scale=0.3):
    """Rows ordered by group, one fully masked response, rewards with ties, Delta != 0."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (G * N,), generator=g)
    lengths[3] = 0
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()
    rewards = torch.randint(0, 3, (G * N,), generator=g).float() + 0.1 * torch.arange(G * N) % 2
    logp_old = -torch.rand(G * N, T, generator=g) * 2
    logp = logp_old + delta_scale * torch.randn(G * N, T, generator=g) * mask
    group = torch.arange(G).repeat_interleave(N)
    return dict(rewards=rewards, mask=mask, logp_old=logp_old, logp=logp, group=group)


def token_rewards(d):
    """verl's token_level_rewards: the scalar reward on the last response token."""
    out = torch.zeros_like(d["mask"])
    last = (d["mask"].sum(-1).long() - 1).clamp_min(0)
    out[torch.arange(len(last)), last] = d["rewards"]
    return out


def registry(name, hp, d, **cfg_extra):
    """Loss and d loss / d logp of the registry objective on the whole batch."""
    logp = d["logp"].clone().requires_grad_(True)
    batch = PolicyBatch(logp=logp, logp_old=d["logp_old"], mask=d["mask"], group=d["group"],
                        rewards=d["rewards"])
    loss, _ = get(name)(batch, get(name).make_config(**hp, **cfg_extra))
    loss.backward()
    return loss.detach(), logp.grad


def loss_config(name, hp):
    return plugin.OPOLossConfig(loss_mode=plugin.PREFIX + name, **hp)


def estimator_advantages(name, hp, d, perm):
    """The plugin's estimator through verl's compute_advantage, rows shuffled, uid strings as groups."""
    root = OmegaConf.create({"actor_rollout_ref": {"actor": {"policy_loss": {
        "_target_": "opo_theory.integrations.verl.OPOLossConfig", "loss_mode": plugin.PREFIX + name, **hp}}},
        "algorithm": {"adv_estimator": plugin.ESTIMATOR,
                      plugin.CONFIG_KEY: "${actor_rollout_ref.actor.policy_loss}"}})
    uid = np.array([f"prompt-{int(x) * 7919 % 101}" for x in d["group"][perm]], dtype=object)
    # the call of verl's compute_advantage (trainer/ppo/ray_trainer.py) for a registered estimator; that
    # module itself needs the rollout server's packages (uvicorn, cachetools), not installed here
    fn = get_adv_estimator_fn(root.algorithm.adv_estimator)
    adv, returns = fn(token_level_rewards=token_rewards(d)[perm], response_mask=d["mask"][perm],
                      config=root.algorithm, index=uid)
    torch.testing.assert_close(returns, adv)
    return adv


def verl_loss(name, hp, d, adv, rows, global_info, loss_fn=None, actor=None):
    """Loss of micro-batch ``rows`` via get_policy_loss_fn, and its gradient w.r.t. log_prob."""
    logp = d["logp"][rows].clone().requires_grad_(True)
    config = actor or SimpleNamespace(policy_loss=loss_config(name, hp), global_batch_info=global_info)
    fn = loss_fn or get_policy_loss_fn(plugin.PREFIX + name)
    loss, metrics = fn(old_log_prob=d["logp_old"][rows], log_prob=logp, advantages=adv[rows],
                       response_mask=d["mask"][rows].bool(), loss_agg_mode="token-mean", config=config)
    loss.backward()
    return loss.detach(), logp.grad, metrics


def test_plugin_loads_through_the_entry_point_in_a_fresh_process():
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERL_USE_EXTERNAL")}
    code = ("import verl\nfrom verl.trainer.ppo import core_algos as c\n"
            "print(sorted(k for k in c.POLICY_LOSS_REGISTRY if k.startswith('opo_theory.')))\n"
            "print('opo_theory' in c.ADV_ESTIMATOR_REGISTRY, c.get_adv_estimator_fn('opo').__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    names, est = out.stdout.strip().splitlines()[-2:]
    assert names == str(sorted(plugin.PREFIX + n for n in (*OPO_FAMILY, *plugin.FIELD_PLUGIN)))
    assert est == "True verl.trainer.ppo.core_algos"      # verl's own 'opo' estimator is untouched


def test_every_opo_family_objective_is_registered():
    from opo_theory.objectives.opo import OPOConfig
    assert set(OPO_FAMILY) == {n for n in available() if issubclass(get(n).config_cls, OPOConfig)}
    assert all(get_policy_loss_fn(plugin.PREFIX + n) for n in OPO_FAMILY)


@pytest.mark.parametrize("name,hp", CASES)
def test_loss_and_gradient_equal_the_registry_under_micro_batching(name, hp):
    d = make_data()
    want_loss, want_grad = registry(name, hp, d)
    perm = torch.randperm(G * N, generator=torch.Generator().manual_seed(1))
    adv = torch.empty(G * N, T)
    adv[perm] = estimator_advantages(name, hp, d, perm)          # back to the original row order
    rows = torch.randperm(G * N, generator=torch.Generator().manual_seed(2))
    # one call on the whole batch without global info (a local mean) ...
    full, full_grad, _ = verl_loss(name, hp, d, adv, rows, {})
    torch.testing.assert_close(full, want_loss, **TOL)
    torch.testing.assert_close(full_grad, want_grad[rows], **TOL)
    # ... and two data-parallel ranks of uneven micro-batches (groups split everywhere) with global info
    info = {"dp_size": 2, "global_batch_size": G * N, "batch_num_tokens": int(d["mask"].sum()),
            "loss_scale_factor": None}
    total, grad = torch.zeros(()), torch.zeros(G * N, T)
    for chunk in torch.split(rows, [3, 5, 1, 7, 4]):
        loss, g, metrics = verl_loss(name, hp, d, adv, chunk, info)
        total += loss / info["dp_size"]          # DDP averages the ranks' accumulated gradients
        grad[chunk] += g / info["dp_size"]
        assert all(np.isfinite(v) and isinstance(v, float) for v in metrics.values())
    torch.testing.assert_close(total, want_loss, **TOL)
    torch.testing.assert_close(grad, want_grad, **TOL)


def test_code_geometry_equals_the_registry_at_the_first_update():
    """'code' p = softmax(Delta/tau) is taken at Delta = 0 on the driver: equal when pi_theta = pi_k."""
    name, hp = "opo", {"geometry": "code", "alpha": 0.75, "seq_logratio": "mean", "delta_clamp": 5.0}
    d = make_data()
    d["logp"] = d["logp_old"].clone()
    want_loss, want_grad = registry(name, hp, d)
    assert want_grad.abs().sum() > 0
    perm = torch.randperm(G * N, generator=torch.Generator().manual_seed(3))
    adv = torch.empty(G * N, T)
    adv[perm] = estimator_advantages(name, hp, d, perm)
    info = {"dp_size": 1, "global_batch_size": G * N}
    rows = torch.arange(G * N)
    total, grad = torch.zeros(()), torch.zeros(G * N, T)
    for chunk in torch.split(rows, 6):
        loss, g, _ = verl_loss(name, hp, d, adv, chunk, info)
        total += loss
        grad[chunk] += g
    torch.testing.assert_close(total, want_loss, **TOL)
    torch.testing.assert_close(grad, want_grad, **TOL)


@pytest.mark.parametrize("geometry,alpha", [("gopo", 0.4), ("paper", 0.4), ("paper", 0.9)])
def test_estimator_group_statistics_in_closed_form(geometry, alpha):
    """d_i = w(A_i) - mean_G w(A), A = R - mean_G R, recomputed per uid with numpy on shuffled rows."""
    d = make_data(seed=4)
    perm = torch.randperm(G * N, generator=torch.Generator().manual_seed(5))
    adv = estimator_advantages("opo", {"geometry": geometry, "alpha": alpha}, d, perm)
    r, grp, mask = d["rewards"][perm].double().numpy(), d["group"][perm].numpy(), d["mask"][perm].numpy()
    want = np.empty_like(r)
    for k in np.unique(grp):
        a = r[grp == k] - r[grp == k].mean()
        w = a if geometry == "gopo" else np.exp((1 - alpha) * a)
        want[grp == k] = w - w.mean()
    np.testing.assert_allclose(adv.numpy(), want[:, None] * mask, rtol=1e-5, atol=1e-6)


def test_config_through_target_and_refusals():
    node = OmegaConf.create({"_target_": "verl.workers.config.FSDPActorConfig", "strategy": "fsdp",
                             "rollout_n": N, "ppo_mini_batch_size": G, "ppo_micro_batch_size_per_gpu": 2,
                             "policy_loss": {"_target_": "opo_theory.integrations.verl.OPOLossConfig",
                                             "loss_mode": "opo_theory.gopo-bounded", "mu": 0.3}})
    actor = omega_conf_to_dataclass(node)
    assert isinstance(actor.policy_loss, plugin.OPOLossConfig) and actor.policy_loss.mu == 0.3
    # the real ActorConfig reaches the loss as verl's ppo_loss passes it
    d = make_data()
    perm = torch.arange(G * N)
    adv = estimator_advantages("gopo-bounded", {"mu": 0.3}, d, perm)
    actor.global_batch_info.update({"dp_size": 1, "global_batch_size": G * N})
    loss, _, _ = verl_loss("gopo-bounded", {}, d, adv, perm, None, actor=actor)
    torch.testing.assert_close(loss, registry("gopo-bounded", {"mu": 0.3}, d)[0], **TOL)
    for bad in ({"alpha": 3.0}, {"geometry": "nope"}, {"loss_mode": "opo_theory.grpo"}):
        with pytest.raises(Exception, match="alpha must|sampling geometry|not an opo_theory loss"):
            omega_conf_to_dataclass(OmegaConf.merge(node, {"policy_loss": bad}))
    with pytest.raises(Exception, match="pi_factor"):        # not a field: OmegaConf refuses it
        omega_conf_to_dataclass(OmegaConf.merge(node, {"policy_loss": {"pi_factor": "sum"}}))


def test_bad_inputs_are_refused_with_one_line():
    d = make_data()
    rows = torch.arange(G * N)
    with pytest.raises(ValueError, match="advantages vary within a response"):
        verl_loss("opo", {}, d, torch.randn(G * N, T), rows, {})
    with pytest.raises(ValueError, match="rollout_is_weights"):
        get_policy_loss_fn("opo_theory.opo")(d["logp_old"], d["logp"], torch.zeros(G * N, T), d["mask"],
                                             config=None, rollout_is_weights=torch.ones(G * N, T))
    with pytest.raises(ValueError, match=r"algorithm.opo_theory"):
        plugin.compute_opo_theory_drive(token_rewards(d), d["mask"], OmegaConf.create({}), d["group"].numpy())
    with pytest.raises(ValueError, match="group ids"):
        plugin.compute_opo_theory_drive(token_rewards(d), d["mask"],
                                        OmegaConf.create({"opo_theory": {"loss_mode": "opo_theory.opo"}}))


# verl's vanilla PPO loss (the default loss_mode) against the registry's grpo and dapo configured alike:
# verl always applies its dual clip (clip_ratio_c = 3) -> registry dual_clip=3.0; verl's GRPO estimator
# z-scores with torch.std (n-1) and eps 1e-6 -> the registry's defaults adv_std='sample', adv_eps=1e-6.
VANILLA = [("grpo", 0.2, 0.2, "seq-mean-token-mean"), ("grpo", 0.2, 0.2, "token-mean"),
           ("dapo", 0.2, 0.28, "token-mean"), ("grpo", 0.1, 0.3, "seq-mean-token-sum")]


@pytest.mark.parametrize("name,low,high,agg", VANILLA)
def test_verl_vanilla_ppo_equals_registry_grpo_and_dapo(name, low, high, agg):
    d = make_data(seed=6, delta_scale=1.5)       # ratios past 1 +- eps and past the dual clip (3)
    want_loss, want_grad = registry(name, {}, d, eps_low=low, eps_high=high, aggregation=agg, dual_clip=3.0)
    adv, _ = compute_grpo_outcome_advantage(token_rewards(d), d["mask"], d["group"].numpy())
    actor = FSDPActorConfig(strategy="fsdp", rollout_n=N, ppo_mini_batch_size=G, ppo_micro_batch_size_per_gpu=2,
                            clip_ratio=low, clip_ratio_low=low, clip_ratio_high=high, loss_agg_mode=agg)
    actor.global_batch_info.update({"dp_size": 1, "global_batch_size": G * N,
                                    "batch_num_tokens": int(d["mask"].sum()), "loss_scale_factor": None})
    total, grad = torch.zeros(()), torch.zeros(G * N, T)
    for chunk in torch.split(torch.randperm(G * N, generator=torch.Generator().manual_seed(7)), 6):
        logp = d["logp"][chunk].clone().requires_grad_(True)
        loss, _ = get_policy_loss_fn("vanilla")(old_log_prob=d["logp_old"][chunk], log_prob=logp,
                                                advantages=adv[chunk], response_mask=d["mask"][chunk].bool(),
                                                loss_agg_mode=agg, config=actor)
        loss.backward()
        total += loss.detach()
        grad[chunk] += logp.grad
    torch.testing.assert_close(total, want_loss, **TOL)
    torch.testing.assert_close(grad, want_grad, **TOL)


def test_singleton_group_advantage_differs_from_the_registry():
    """Documented difference: verl gives a group of one response A = R / (1 + eps), the registry 0."""
    r = torch.tensor([[0.0, 2.0]])
    adv, _ = compute_grpo_outcome_advantage(r, torch.ones(1, 2), np.array(["a"], dtype=object))
    assert adv[0, 0].item() == pytest.approx(2.0 / (1 + 1e-6))
    batch = PolicyBatch(logp=torch.zeros(1, 2), logp_old=torch.zeros(1, 2), mask=torch.ones(1, 2),
                        group=torch.zeros(1, dtype=torch.long), rewards=torch.tensor([2.0]))
    from opo_theory.objectives.advantages import advantages
    assert advantages(batch, "zscore").item() == 0.0


def readme_verl_blocks():
    """The README's verl section: its hydra overrides (bash block) and its YAML block."""
    from opo_theory.io import REPO_ROOT
    text = (REPO_ROOT / "README.md").read_text().split("## verl\n", 1)[1].split("\n## ", 1)[0]
    bash = text.split("```bash\n", 1)[1].split("```", 1)[0]
    overrides = [tok.strip("'") for line in bash.splitlines()[1:] for tok in line.split() if "=" in tok]
    return overrides, text.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_overrides_compose_with_verls_own_config():
    """The README's overrides on verl's ppo_trainer: one objective config reaches estimator and loss."""
    import verl
    from hydra import compose, initialize_config_dir
    overrides, yaml_block = readme_verl_blocks()
    assert "algorithm.adv_estimator=opo_theory" in overrides
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    actor_node = cfg.actor_rollout_ref.actor
    loss_cfg = omega_conf_to_dataclass(actor_node.policy_loss)
    assert isinstance(loss_cfg, plugin.OPOLossConfig)
    name, want = plugin.objective_config(loss_cfg)
    assert plugin.objective_config(cfg.algorithm[plugin.CONFIG_KEY]) == (name, want)
    assert (name, want.alpha, want.geometry) == ("opo", 0.4, "paper")
    assert get_adv_estimator_fn(cfg.algorithm.adv_estimator) is plugin.compute_opo_theory_drive
    assert get_policy_loss_fn(loss_cfg.loss_mode) is get_policy_loss_fn("opo_theory.opo")
    # the YAML block merged on the same config
    merged = OmegaConf.merge(cfg, OmegaConf.create(yaml_block))
    name, bounded = plugin.objective_config(merged.algorithm[plugin.CONFIG_KEY])
    assert (name, bounded.mu, bounded.alpha) == ("gopo-bounded", 0.5, 0.4)
