"""The transformers backend on models built here (random weights, a BPE tokenizer trained on the task):
the policy interface agrees with plain forwards, the BPE vocabulary keeps the task's formatting and
reward parsing, RL through 'hf:' logs diagnostics equal to a direct computation, and resume is exact."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from resume_check import assert_resume_is_exact, timeless_rows  # noqa: E402

from opo_theory.cli import main  # noqa: E402
from opo_theory.lm.models.char_gpt import GPT, GPTConfig  # noqa: E402
from opo_theory.lm.models.hf import load_hf_policy  # noqa: E402
from opo_theory.lm.models.sampling import generate, response_logprobs, response_mask  # noqa: E402
from opo_theory.lm.models.tiny_hf import build_tiny_model  # noqa: E402
from opo_theory.lm.models.tokenizer import CHAR_VOCAB  # noqa: E402
from opo_theory.lm.tasks.arithmetic import problems, reward  # noqa: E402
from opo_theory.lm.training.config import make_config  # noqa: E402
from opo_theory.lm.training.trainer import start_run  # noqa: E402
from opo_theory.objectives import DRIVE_KEY, PolicyBatch, get  # noqa: E402

FAMILIES = ("opo", "grpo", "dapo", "gspo", "dr-grpo")
# level-1 sums, a 2-layer 32-wide model, a short SFT so that rewards differ within groups
HF_MICRO = ["train_level=1", "ood_level=2", "pool_size=60", "val_size=12", "sft_max_steps=150", "sft_batch=32",
            "sft_lr=0.01", "sft_eval_every=150", "shaping=0.5", "prompts_per_step=6", "group_size=4",
            "max_new=4", "val_every=2", "checkpoint_every=2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {arch: build_tiny_model(root / arch, arch, layers=2, width=32, heads=4, vocab_size=40)
            for arch in ("llama", "gpt2")}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return HF_MICRO + [f"sft_cache={tmp_path_factory.mktemp('sft')}"]


def policies(models):
    torch.manual_seed(0)
    return {"char-gpt": GPT(GPTConfig(CHAR_VOCAB.size, 2, 2, 32, 40)),
            **{arch: load_hf_policy(path) for arch, path in models.items()}}


def prompt_batch(policy, texts=("12+34=", "7-8=", "(1+2)*3=")):
    width = max(len(policy.vocab.encode_prompt(t)) for t in texts)
    return policy.vocab.prompts(list(texts), width)


def test_bpe_vocabulary_keeps_the_task_format_and_reward_parsing(models):
    vocab = load_hf_policy(models["llama"]).vocab
    assert vocab.pad_id == 0 and vocab.eos_id == 1
    lengths = []
    for p in problems(3, "val", 50, seed=0):
        ids = vocab.encode_answer(p.answer)
        assert vocab.decode(ids + [vocab.eos_id] + vocab.encode_answer("99") + [vocab.pad_id]) == p.answer
        assert reward(vocab.decode(ids + [vocab.eos_id]), p.answer) == (1.0, True)
        lengths.append(len(vocab.encode_prompt(p.prompt)) / len(p.prompt))
    assert max(lengths) <= 1 and min(lengths) < 1        # BPE merges: never longer than the characters
    assert vocab.decode([vocab.eos_id]) == ""
    assert vocab.prompts(["1+1=", "12+34="]).tolist()[0][0] == vocab.pad_id


@pytest.mark.parametrize("name", ["char-gpt", "llama", "gpt2"])
def test_policy_interface_agrees_with_a_plain_forward(name, models):
    """Greedy decoding through the KV cache equals recomputation, and the shared-prefix log-probs
    equal the expanded batch in value and gradient, for every backend."""
    policy = policies(models)[name]
    prompts = prompt_batch(policy)
    a = generate(policy.eval(), prompts, 6, temperature=0.0, repeats=2)
    b = generate(policy, prompts, 6, temperature=0.0, repeats=2, use_cache=False)
    assert torch.equal(a, b)
    tokens = generate(policy, prompts, 5, 1.0, 1.0, torch.Generator().manual_seed(0), repeats=3)
    full, ent_full = response_logprobs(policy, prompts.repeat_interleave(3, 0), tokens, with_entropy=True)
    shared, ent_shared = response_logprobs(policy, prompts, tokens, with_entropy=True, repeats=3)
    assert torch.allclose(full, shared, atol=1e-5) and torch.allclose(ent_full, ent_shared, atol=1e-5)
    params = list(policy.parameters())
    g_full = torch.autograd.grad(full.sum(), params)
    g_shared = torch.autograd.grad(shared.sum(), params)
    assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(g_full, g_shared))


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_left_padding_does_not_change_a_prompts_logprobs(arch, models):
    policy = load_hf_policy(models[arch]).eval()
    tokens = torch.tensor([[5, 6, 1]])
    alone = response_logprobs(policy, prompt_batch(policy, ("7-8=",)), tokens)[0]
    padded = policy.vocab.prompts(["7-8=", "(12+34)*5="])
    assert (padded[0] == policy.vocab.pad_id).sum() >= 3
    in_batch = response_logprobs(policy, padded, tokens.repeat(2, 1))[0][:1]
    assert torch.allclose(alone, in_batch, atol=1e-5)


def direct_logprobs(policy, state, prompts, tokens, group):
    """log pi(response tokens) and entropy by one plain transformers forward per response (prompt repeated,
    left padding masked, positions counting real tokens): no cache, no shared prefix."""
    policy = copy.deepcopy(policy)
    policy.load_state_dict(state)
    ids = torch.cat([prompts.repeat_interleave(group, 0), tokens], 1)
    mask = torch.cat([(prompts != policy.vocab.pad_id).long().repeat_interleave(group, 0),
                      torch.ones_like(tokens)], 1)
    logits = policy.lm(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp_min(0)).logits
    logp_all = F.log_softmax(logits[:, prompts.shape[1] - 1:-1].float(), -1)
    return (logp_all.gather(-1, tokens[..., None]).squeeze(-1), -(logp_all.exp() * logp_all).sum(-1),
            list(policy.parameters()))


def flat_grad(loss, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)]).double()


def cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("objective", FAMILIES)
def test_rl_through_hf_logs_diagnostics_equal_to_a_direct_computation(objective, models, settings, tmp_path):
    cfg = make_config(objective, "cpu-tiny", 0, settings + ["ppo_epochs=2", "minibatches=1", "lr=0.01"],
                      steps=1, model=f"hf:{models['llama']}")
    trainer = start_run(cfg, tmp_path, quiet=True)
    start = copy.deepcopy(trainer.model.state_dict())
    before_update = []      # parameters at which each update's gradient was taken
    trainer.opt.register_step_pre_hook(lambda *_: before_update.append(copy.deepcopy(trainer.model.state_dict())))
    seen = {}
    real_rollout = trainer._rollout
    trainer._rollout = lambda: seen.setdefault("rollout", real_rollout())
    trainer.run()
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    ro = seen["rollout"]
    prompts, tokens, rewards = ro.prompts, ro.tokens, ro.rewards
    assert len(before_update) == 2 and 0 < float(rewards.std())     # two updates, a reward signal

    g = cfg.group_size
    mask = response_mask(tokens, trainer.vocab)
    groups = torch.arange(len(tokens)) // g
    logp_old = direct_logprobs(trainer.model, start, prompts, tokens, g)[0].detach()
    logp, ent, params = direct_logprobs(trainer.model, before_update[-1], prompts, tokens, g)
    batch = PolicyBatch(logp=logp, logp_old=logp_old, mask=mask, group=groups, rewards=rewards)
    spec, obj_cfg = get(objective), get(objective).make_config()
    loss, parts = spec(batch, obj_cfg)
    g_total = flat_grad(loss, params)
    close = lambda key, value: math.isclose(row[key], value, rel_tol=2e-3, abs_tol=1e-6)
    assert close("grad/norm", float(g_total.norm())), (row["grad/norm"], float(g_total.norm()))
    assert close("entropy/mean", float((ent.detach() * mask).sum() / mask.sum()))
    if DRIVE_KEY in parts:
        g_drive = flat_grad(parts[DRIVE_KEY], params)
        assert close("grad/norm_drive", float(g_drive.norm()))
        assert close("grad/norm_reg", float((g_total - g_drive).norm()))
    if objective == "opo":
        assert float((g_total - g_drive).norm()) > 0             # the chi² penalty acts off the anchor
        exact = get("opo-exact")(batch, obj_cfg)[0]
        assert math.isclose(row["approx/grad_cos"], cos(flat_grad(exact, params), g_total), abs_tol=1e-4)

    post = direct_logprobs(trainer.model, trainer.model.state_dict(), prompts, tokens, g)[0].detach()
    delta = ((post - logp_old) * mask).sum(-1).double()          # sequence log-ratio after the step
    assert float(delta.abs().max()) > 1e-3
    assert close("delta/m3", float((delta**3).mean())) and close("delta/m2", float((delta**2).mean()))
    post_batch = batch.with_(logp=post)
    gap = get("opo-exact")(post_batch, get("opo").make_config())[0] - get("opo")(post_batch, get("opo").make_config())[0]
    assert close("approx/loss_gap", float(gap))


def test_hf_resume_reproduces_the_uninterrupted_run(models, settings, tmp_path, monkeypatch):
    assert_resume_is_exact(make_config("opo", "cpu-tiny", 1, settings, steps=4, model=f"hf:{models['gpt2']}"),
                           tmp_path, monkeypatch)


def test_cli_trains_an_hf_model_and_rejects_a_bad_one(models, settings, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", f"hf:{models['llama']}", "--objective", "opo", "--steps", "3",
                 "--out", str(out), "--quiet", *(x for s in settings for x in ("--set", s))]) == 0
    rows = timeless_rows(out)
    assert [r["step"] for r in rows] == [0, 1, 2] and all(math.isfinite(r["grad/norm"]) for r in rows)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == f"hf:{models['llama']}" and config["sft"]["sft_steps"] == 150
    missing = tmp_path / "nowhere"
    assert main(["train", "--model", f"hf:{missing}", "--objective", "opo", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--model", "gpt9", "--objective", "opo", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2] == (f"opo-theory: error: model 'hf:{missing}': {missing} holds no config.json (expected a "
                       "local directory written by save_pretrained; nothing is downloaded)")
    assert "unknown model 'gpt9'; allowed: char-gpt, smollm2-135m, hf:<dir written by save_pretrained> or gguf:" in err[-1]
    assert not (tmp_path / "x").exists()


def test_a_missing_transformers_is_one_clear_error(models, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(ValueError, match=r"needs the optional transformers dependency: pip install -e '\.\[hf\]'"):
        load_hf_policy(models["llama"])


@pytest.mark.parametrize("arch", ["char-gpt", "llama"])
def test_bf16_autocast_path_trains_on_the_cpu(arch, models, settings, tmp_path):
    """The GPU preset's bf16 autocast path (KV cache in float32, logits upcast before log-softmax) runs on
    the CPU too, so it is exercised without a GPU: finite diagnostics, float32 anchor log-probs."""
    model = "char-gpt" if arch == "char-gpt" else f"hf:{models[arch]}"
    cfg = make_config("opo", "cpu-tiny", 0, settings + ["bf16=true", "val_every=100"], steps=2, model=model)
    trainer = start_run(cfg, tmp_path, quiet=True)
    trainer.run()
    rows = timeless_rows(tmp_path)
    assert len(rows) == 2 and all(math.isfinite(r[k]) for r in rows for k in ("grad/norm", "delta/m3", "entropy/mean"))
    assert rows[1]["delta/abs_max"] > 0
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())    # autocast, weights stay float32
