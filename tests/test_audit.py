"""Confidence-resolved gradient audit: per-bin statistics against a hand computation, the audit's gradients
against direct autograd, the applied update norm, the trainer's per-step keys, the verdict, the CLI."""

import json
import math

import pytest
import torch
from conftest import AUDIT_SETTINGS, micro_settings

from opo_theory.cli import main
from opo_theory.lm.experiments import audit as A
from opo_theory.lm.models.char_gpt import GPT, GPTConfig
from opo_theory.lm.models.sampling import response_logprobs, response_mask
from opo_theory.lm.models.tokenizer import CHAR_VOCAB
from opo_theory.lm.training.confidence import (
    BIN_NAMES,
    bin_statistics,
    confidence_bins,
    logit_scale,
)
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.sft import prompt_width, task_pools
from opo_theory.lm.training.trainer import start_run
from opo_theory.objectives import PolicyBatch, get


@pytest.fixture(scope="module")
def micro(sft_cache):
    return micro_settings(*AUDIT_SETTINGS, cache=sft_cache)


# token probabilities of the anchor, one per bin and the two bin edges 0.9 and 0.999 (left-closed bins)
P_OLD = torch.tensor([[0.3, 0.7, 0.95], [0.995, 0.9995, 0.9], [0.6, 0.999, 0.2], [0.97, 0.4, 0.9999]])
RATIO = torch.tensor([[1.5, 1.3, 1.05], [0.7, 0.75, 1.0], [0.9, 0.5, 1.6], [1.02, 1.02, 0.85]])   # p_old r <= 1
MASK = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 1, 1], [1, 0, 1]])
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0])         # groups (0, 1), (2, 3): A = +, -, -, +


def test_bins_are_left_closed_at_the_stated_edges():
    p = torch.tensor([0.49, 0.5, 0.89, 0.9, 0.99, 0.995, 0.999, 1.0])
    assert confidence_bins(p.log()).tolist() == [0, 1, 1, 2, 3, 3, 4, 4]


def test_grpo_bins_against_a_hand_computation():
    """dL/dlogp of GRPO by autograd, binned, equals the hand formula: -A r / (L_i B) where the clip does not
    bind, exactly 0 where it does (A > 0 and r > 1.2, or A < 0 and r < 0.8)."""
    assert (P_OLD * RATIO <= 1).all()
    logp_old = P_OLD.log()
    logp = (logp_old + RATIO.log()).requires_grad_()
    batch = PolicyBatch(logp=logp, logp_old=logp_old, mask=MASK, group=torch.tensor([0, 0, 1, 1]), rewards=REWARDS)
    loss, _ = get("grpo")(batch)
    grad = torch.autograd.grad(loss, logp)[0]
    stats = bin_statistics(logp_old, MASK, grad, torch.tensor([0.5, -0.5, -0.5, 0.5]), signs=("all", "pos", "neg"))
    a = 0.5 / (math.sqrt(0.5) + 1e-6)               # z-scored advantage of a 1/0 group (sample std)
    edges = (0.5, 0.9, 0.99, 0.999)
    sums, counts, zeros = {}, {}, {}
    for i in range(4):
        adv = a if REWARDS[i] == 1.0 else -a
        length = float(MASK[i].sum())
        for t in range(3):
            if MASK[i, t] == 0:
                continue
            p, r = float(P_OLD[i, t]), float(RATIO[i, t])
            b = BIN_NAMES[sum(p >= e for e in edges)]
            clipped = (adv > 0 and r > 1.2) or (adv < 0 and r < 0.8)
            g = 0.0 if clipped else abs(adv * r) / (length * 4)
            for key in (b, f"{b}/{'pos' if adv > 0 else 'neg'}"):
                sums[key] = sums.get(key, 0.0) + g
                counts[key] = counts.get(key, 0) + 1
                zeros[key] = zeros.get(key, 0) + clipped
    assert sum(zeros.values()) >= 6 and len({k for k in counts if "/" not in k}) == 5    # clips bind; every bin
    for key, n in counts.items():
        assert stats[f"{key}/grad_abs"] == pytest.approx(sums[key] / n, rel=1e-5)
        assert stats[f"{key}/clip_zero"] == pytest.approx(zeros[key] / n)
        assert stats[f"{key}/share"] == pytest.approx(n / MASK.sum().item())
    assert stats["0.99-0.999/clip_zero"] == 1.0 and stats["ge0.999/clip_zero"] == pytest.approx(2 / 3)  # A < 0 side
    assert stats["0.9-0.99/pos/clip_zero"] == 0.0      # A > 0: r > 1.2 is impossible once p_old > 1/1.2


def test_logit_scale_is_the_norm_of_e_y_minus_pi():
    logits = torch.randn(2, 3, 7, dtype=torch.float64)
    tokens = torch.randint(7, (2, 3))
    pi = logits.softmax(-1)
    direct = (torch.nn.functional.one_hot(tokens, 7) - pi).norm(dim=-1)
    assert torch.allclose(logit_scale(logits.log_softmax(-1), tokens), direct)
    # and |dL/dz| = |dL/dlogp_y| ||e_y - pi|| for any loss of logp_y
    z = logits.clone().requires_grad_()
    logp = z.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    w = torch.randn(2, 3, dtype=torch.float64)
    g_logp = w
    g_z = torch.autograd.grad((w * logp).sum(), z)[0]
    assert torch.allclose(g_z.norm(dim=-1), g_logp.abs() * direct)


@pytest.fixture(scope="module")
def setup(micro):
    cfg = make_config("opo", "cpu-tiny", 0, micro)
    torch.manual_seed(0)
    pools = task_pools(cfg)
    width = prompt_width(CHAR_VOCAB, *pools.values())
    model = GPT(GPTConfig(CHAR_VOCAB.size, 1, 2, 16, width + cfg.max_new + 1)).eval()
    rollout = A.sample_rollouts(model, pools, width, cfg, seed=1)
    rollout["rewards"] = torch.arange(len(rollout["tokens"]), dtype=torch.float32) % 3   # varied within groups
    rollout["logp_old"] = A.policy_forward(model, rollout, cfg, grad=False)[0]
    return cfg, model, rollout


@pytest.mark.parametrize("label", ["opo", "ppo-kl", "dapo"])
def test_audit_bins_equal_direct_autograd_and_update_norm_is_the_parameter_change(label, setup):
    """The first update's per-bin numbers equal bin_statistics of dL/dlogp computed directly (a gradient
    accumulated from the diagnostics' extra backwards would not); the update norm is ||theta_1 - theta_0||."""
    cfg, model, rollout = setup
    anchor = {k: v.clone() for k, v in model.state_dict().items()}
    data = A.audit_objective(model, anchor, None, rollout, label, cfg, updates=1)
    moved = math.sqrt(sum(float((model.state_dict()[k] - v).double().pow(2).sum()) for k, v in anchor.items()))
    assert data["per_update"]["grad/update_norm"][0] == pytest.approx(moved, rel=1e-6) and moved > 0
    model.load_state_dict(anchor)
    name, over = A.AUDIT_OBJECTIVES[label]
    logp, _ = response_logprobs(model, rollout["prompts"], rollout["tokens"], repeats=cfg.group_size)
    mask = response_mask(rollout["tokens"], CHAR_VOCAB)
    group = torch.arange(len(mask)) // cfg.group_size
    batch = PolicyBatch(logp=logp, logp_old=rollout["logp_old"], mask=mask, group=group, rewards=rollout["rewards"],
                        logp_ref=rollout["logp_old"])
    loss, parts = get(name)(batch, get(name).make_config(**over))
    grad = torch.autograd.grad(loss, logp)[0]
    adv = rollout["rewards"] - rollout["rewards"].view(-1, cfg.group_size).mean(1).repeat_interleave(cfg.group_size)
    direct = bin_statistics(rollout["logp_old"], mask, grad, adv, signs=("all", "pos", "neg"))
    got = data["per_bin"]["first"]
    for key, value in direct.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-12, nan_ok=True), key


def test_trainer_logs_the_cheap_part_identically_with_and_without_extra_backwards(micro, tmp_path):
    """conf/* keys do not depend on grad_split/approx_grad (their extra backwards must not leak into them),
    and grad/update_norm is ||theta_after - theta_before|| of the step's one update."""
    rows = []
    for extra in ([], ["grad_split=false", "approx_grad=false", "trust_region_metrics=false"]):
        cfg = make_config("opo", "cpu-tiny", 0, micro + ["ppo_epochs=1", "minibatches=1"] + extra, steps=1)
        trainer = start_run(cfg, tmp_path / str(len(extra)), quiet=True)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        row = trainer.rl_step()
        moved = math.sqrt(sum(float((p.detach() - b).double().pow(2).sum())
                              for p, b in zip(trainer.model.parameters(), before)))
        assert row["grad/update_norm"] == pytest.approx(moved, rel=1e-6)
        clipped = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in trainer.model.parameters()
                                if p.grad is not None))       # the gradient clip_grad_norm_ left for AdamW
        assert row["grad/norm_applied"] == pytest.approx(clipped, rel=1e-5)
        assert row["grad/norm_applied"] == pytest.approx(min(row["grad/norm"], cfg.grad_clip), rel=1e-5)
        rows.append(row)
    conf = sorted(k for k in rows[0] if k.startswith("conf/"))
    assert len(conf) == 2 + 3 * len(BIN_NAMES) and "delta/abs_max_update" in rows[1]
    for k in conf:
        assert rows[0][k] == pytest.approx(rows[1][k], rel=1e-6, nan_ok=True), k
    assert sum(rows[0][f"conf/{b}/share"] for b in BIN_NAMES) == pytest.approx(1.0)


def fake_summary(opo, base, clip_opo=(0.0,) * 5, clip_base=(0.0,) * 5):
    """Per-seed logit-space sizes and clip-zero shares, the same in every bin and sign, for opo and grpo/dapo."""
    seeds = lambda size, clip: {"last": {sg: {b: {"logit_abs": list(size), "clip_zero": list(clip)} for b in BIN_NAMES}
                                         for sg in ("all", "pos", "neg")}}
    return {"opo": {"per_seed": seeds(opo, clip_opo)}, "grpo": {"per_seed": seeds(base, clip_base)},
            "dapo": {"per_seed": seeds(base, clip_base)}}


HIGH, LOW = (2.0, 2.2, 1.9, 2.1, 2.05), (1.0, 1.1, 0.9, 1.0, 1.02)


def test_verdict_is_paired_over_seeds_on_the_logit_space_size():
    assert A.mechanism_verdict(fake_summary(HIGH, LOW))["overall"] == "verified"
    assert A.mechanism_verdict(fake_summary(LOW, HIGH))["overall"] == "refuted"
    # marginal intervals overlap (seed-to-seed spread 10x the gap) but every seed differs the same way: paired
    spread = (1.0, 10.0, 100.0, 1000.0, 5.0)
    paired_up = A.mechanism_verdict(fake_summary([x * r for x, r in zip(spread, (1.2, 1.21, 1.19, 1.2, 1.22),
                                                                        strict=True)], spread))
    assert paired_up["overall"] == "verified"
    # the same ratio in every seed (log difference constant up to rounding) has no spread: undetermined
    assert A.mechanism_verdict(fake_summary([x * 1.2 for x in spread], spread))["overall"] == "undetermined"
    noise = A.mechanism_verdict(fake_summary((1.0, 2.0, 0.5, 1.5, 1.0), (1.5, 1.0, 1.0, 0.6, 1.2)))
    assert noise["overall"] == "not supported" and "no detectable difference under opo, p_old" in noise["detail"]
    s = fake_summary(HIGH, LOW)
    for sign in ("pos", "neg"):                        # only the top bin fails: the verdict names the condition
        s["opo"]["per_seed"]["last"][sign]["ge0.999"]["logit_abs"] = list(LOW)
    v = A.mechanism_verdict(s)
    assert v["overall"] == "conditional" and "ge0.999" in v["detail"]
    assert v["conditions"]["opo, p_old 0.9-0.99, A pos"]["outcome"] == "higher"


def test_verdict_judges_the_clip_zero_share_and_refuses_old_records():
    v = A.mechanism_verdict(fake_summary(HIGH, LOW, clip_base=(0.5, 0.6, 0.55, 0.52, 0.58)))
    assert v["clip_zero"]["verdict"] == "verified"
    same = A.mechanism_verdict(fake_summary(HIGH, LOW))      # no clip anywhere: no spread, nothing to decide
    assert same["clip_zero"]["verdict"] == "undetermined"
    old = {o: {"per_bin": {}} for o in ("opo", "grpo", "dapo")}
    with pytest.raises(ValueError, match="no per-seed values"):
        A.mechanism_verdict(old)


def test_intervals_of_positive_quantities_cannot_cross_zero():
    iv = A.interval([1e-3, 1.0, 30.0], "positive")
    assert 0 < iv["low"] < iv["mean"] < iv["high"] and iv["mean"] == pytest.approx((1e-3 * 30) ** (1 / 3))
    frac = A.interval([0.0, 0.02, 0.99], "fraction")
    assert 0.0 <= frac["low"] and frac["high"] <= 1.0
    assert A.interval([None, math.nan], "signed")["n"] == 0


def test_cli_runs_on_the_char_gpt_resumes_and_rejects_bad_input(micro, tmp_path, capsys):
    out = tmp_path / "audit"
    args = ["audit", "--out", str(out), "--seeds", "2", "--updates", "2", "--objectives", "opo,grpo,dapo,gspo",
            "--quiet", "--set", *micro]
    assert main(args) == 0
    record = json.loads((out / "audit.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert record["settings"]["seeds"] == 2 and set(record["summary"]) == {"opo", "grpo", "dapo", "gspo"}
    assert record["verdict"]["overall"] in ("verified", "conditional", "refuted", "not supported", "undetermined")
    assert len(record["summary"]["opo"]["per_update"]["after_update/delta/m3"]) == 2
    assert main(args) == 2 and "already holds this audit; pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert json.loads((out / "audit.json").read_text())["summary"] == record["summary"]
    for bad, message in ((["--seeds", "0"], "--seeds must be"), (["--objectives", "nope"], "unknown audit objective"),
                         (["--policy", "bogus"], "unknown --policy 'bogus'"),
                         (["--checkpoint", str(tmp_path / "none")], "expected a run directory"),
                         (["--set", "objective.mu=2"], "drop 'objective.mu=2'")):
        assert main(["audit", "--out", str(tmp_path / "bad"), "--quiet", "--set", *micro] + bad) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cli_audits_a_checkpoint_and_an_hf_model(micro, tmp_path):
    pytest.importorskip("transformers")
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    run = tmp_path / "run"
    assert main(["train", "--objective", "grpo", "--out", str(run), "--steps", "1", "--quiet", "--set", *micro]) == 0
    assert main(["audit", "--checkpoint", str(run), "--out", str(tmp_path / "ck"), "--seeds", "2", "--updates", "1",
                 "--objectives", "opo,grpo", "--quiet"]) == 0
    assert json.loads((tmp_path / "ck" / "audit.json").read_text())["policy"]["step"] == 1
    hf = build_tiny_model(tmp_path / "llama", "llama", layers=1, width=16, heads=2, vocab_size=40)
    hf_settings = [s for s in micro if not s.startswith(("n_layer", "n_embd", "n_head", "sft_max"))]
    assert main(["audit", "--model", f"hf:{hf}", "--out", str(tmp_path / "hf"), "--seeds", "2", "--updates", "2",
                 "--objectives", "opo,dapo", "--quiet", "--set", *hf_settings, "sft_max_steps=0"]) == 0
    record = json.loads((tmp_path / "hf" / "audit.json").read_text())
    assert record["settings"]["config"]["model"] == f"hf:{hf}"
    shares = record["summary"]["dapo"]["per_bin"]["first"]["all"]
    assert sum(shares[b]["share"]["mean"] for b in BIN_NAMES) == pytest.approx(1.0)
    assert all(x["n"] == 2 for x in record["summary"]["opo"]["per_update"]["grad/norm"])


def test_confident_policy_trains_until_the_stated_level_and_is_cached(micro, monkeypatch):
    cfg = make_config("opo", "cpu-tiny", 0, micro + ["sft_eval_every=40", "sft_lr=0.01"])
    pools = task_pools(cfg)
    model, info = A.confident_policy(cfg, pools, target_accuracy=1.0, target_prob=0.3, max_steps=400, quiet=True)
    assert info["reached"] and info["answer_token_prob"] >= 0.3 and info["confident_steps"] <= 400
    width = prompt_width(model.vocab, *pools.values())
    items = pools["train"][:cfg.val_size]
    probs = []                                    # direct: pi(answer token) of each problem, one at a time
    for p in items:
        prompt = model.vocab.prompts([p.prompt], width)
        answer = torch.tensor([model.vocab.encode_answer(p.answer) + [model.vocab.eos_id]])
        probs += response_logprobs(model, prompt, answer)[0].exp().flatten().tolist()
    assert info["answer_token_prob"] == pytest.approx(sum(probs) / len(probs), rel=1e-4)
    monkeypatch.setattr(A, "sft_step", lambda *a: pytest.fail("the cached confident policy was retrained"))
    again, info2 = A.confident_policy(cfg, pools, target_accuracy=1.0, target_prob=0.3, max_steps=400, quiet=True)
    assert info2 == info and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                   again.state_dict().values()))


def test_audit_update_starts_from_the_optimizer_state_on_its_mini_batch(setup):
    """With minibatches=2 update 1 trains on the first half of the groups from the given AdamW state (a
    checkpoint's): the parameters equal forward, backward, clip and AdamW.step by hand from that state; a fresh
    optimizer gives other parameters (the state is used)."""
    import copy

    from opo_theory.lm.models.backend import param_groups

    cfg, model, rollout = setup
    anchor = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    warm = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    gen = torch.Generator().manual_seed(3)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    warm.step()                                       # moments and step count that a fresh AdamW lacks
    state = copy.deepcopy(warm.state_dict())

    def audited(opt_state):
        A.audit_objective(model, anchor, opt_state, rollout, "grpo", cfg, updates=1, minibatches=2)
        return {k: v.clone() for k, v in model.state_dict().items()}

    got, fresh = audited(state), audited(None)
    model.load_state_dict(anchor)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=True)
    opt.load_state_dict(copy.deepcopy(state))
    half, g = len(rollout["tokens"]) // 2, cfg.group_size
    logp, _ = response_logprobs(model, rollout["prompts"][:half // g], rollout["tokens"][:half], repeats=g)
    batch = PolicyBatch(logp=logp, logp_old=rollout["logp_old"][:half], mask=response_mask(
        rollout["tokens"][:half], CHAR_VOCAB), group=torch.arange(half) // g, rewards=rollout["rewards"][:half])
    loss, _ = get("grpo")(batch, get("grpo").make_config())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.step()
    for k, v in model.state_dict().items():
        assert torch.allclose(got[k], v, rtol=1e-5, atol=1e-7), k
    assert any(not torch.allclose(got[k], fresh[k]) for k in got)
    with pytest.raises(ValueError, match="does not split"):
        A.audit_objective(model, anchor, None, rollout, "grpo", cfg, updates=1, minibatches=3)


def test_verdict_table_of_a_one_seed_audit_has_no_interval():
    from opo_theory.lm.audit_cli import verdict_table

    record = {"rollout_accuracy": {"mean": 0.35, "low": None, "high": None, "n": 1}, "policy": {"policy": "sft"},
              "verdict": None}
    assert verdict_table(record).startswith("policy sft (SFT val accuracy ?); rollout accuracy 0.35 over 1 seeds")
