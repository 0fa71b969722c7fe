"""LM trainer: SFT learns, KV cache equals recompute, every objective updates, rewards, resume, errors."""

import json

import pytest
import torch
from conftest import micro_settings
from resume_check import assert_resume_is_exact

from opo_theory import objectives as O
from opo_theory.cli import main
from opo_theory.lm.models.char_gpt import GPT, GPTConfig, KVCache
from opo_theory.lm.models.sampling import generate, response_logprobs, response_mask
from opo_theory.lm.models.tokenizer import CHAR_VOCAB, EOS, PAD, VOCAB, decode, encode, left_pad
from opo_theory.lm.tasks.arithmetic import problems, reward
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.rollout import used_columns
from opo_theory.lm.training.sft import model_config, sft_batch, sft_loss
from opo_theory.lm.training.trainer import Trainer, start_run
from opo_theory.objectives import available


@pytest.fixture(scope="module")
def micro(sft_cache):
    return micro_settings("shaping=0.5", cache=sft_cache)


def test_reward_hand_cases():
    assert reward("46", "46") == (1.0, True)
    assert reward("45", "46") == (0.0, False)
    assert reward("45", "46", shaping=0.1) == (0.1, False)
    assert reward("4+6", "46", shaping=0.1) == (0.0, False)      # malformed
    assert reward("", "46", shaping=0.1) == (0.0, False)         # empty
    assert reward("-7", "-7") == (1.0, True)


def test_task_is_deterministic_and_splits_are_disjoint():
    a, b = problems(3, "train", 50, seed=1), problems(3, "train", 50, seed=1)
    assert a == b
    val = {p.prompt for p in problems(3, "val", 50, seed=1)}
    assert not val & {p.prompt for p in a}
    assert all(str(eval(p.prompt[:-1])) == p.answer for p in problems(4, "val", 30, seed=2))
    with pytest.raises(ValueError, match="unknown level 7"):
        problems(7, "train", 1, 0)


def test_tokenizer_round_trip_and_padding():
    ids = encode("12+3=")
    assert decode(ids + [EOS] + encode("99")) == "12+3="
    assert left_pad([[5], [6, 7]]).tolist() == [[PAD, 5], [6, 7]]
    with pytest.raises(ValueError, match="character 'x' is not in the vocabulary"):
        encode("1x")
    assert response_mask(torch.tensor([[3, EOS, PAD], [4, 5, 6]]), CHAR_VOCAB).tolist() == [[1, 1, 0], [1, 1, 1]]
    assert used_columns(torch.tensor([[3, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]]), CHAR_VOCAB) == 2
    assert used_columns(torch.full((2, 3), PAD), CHAR_VOCAB) == 1


def test_sft_drives_the_loss_down_on_a_fixed_batch():
    torch.manual_seed(0)
    pool = problems(2, "train", 64, seed=0)
    model = GPT(GPTConfig(len(VOCAB), 1, 2, 32, 24))
    batch = sft_batch(pool, torch.arange(64), 8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = sft_loss(model, *batch).item()
    for _ in range(60):
        loss = sft_loss(model, *batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_kv_cache_greedy_equals_recompute():
    torch.manual_seed(1)
    model = GPT(GPTConfig(len(VOCAB), 2, 2, 32, 40)).eval()
    prompts = left_pad([encode("12+34="), encode("7-8="), encode("(1+2)*3=")])
    a = generate(model, prompts, 12, temperature=0.0, use_cache=True)
    b = generate(model, prompts, 12, temperature=0.0, use_cache=False)
    assert torch.equal(a, b)


def test_chunked_decoding_through_the_cache_equals_one_full_forward():
    torch.manual_seed(2)
    model = GPT(GPTConfig(len(VOCAB), 2, 2, 32, 40)).eval()
    seq = torch.randint(2, len(VOCAB), (3, 11))
    cache = KVCache(model.cfg, 3, "cpu", torch.float32, capacity=11)
    chunks = [model(seq[:, :5], cache), model(seq[:, 5:6], cache), model(seq[:, 6:], cache)]
    assert torch.allclose(torch.cat(chunks, 1), model(seq), atol=1e-5)
    with pytest.raises(ValueError, match="exceeds the cache capacity 11"):
        model(seq[:, :1], cache)


def test_shared_prompt_forward_equals_the_expanded_batch_in_value_and_gradient():
    torch.manual_seed(3)
    model = GPT(GPTConfig(len(VOCAB), 2, 2, 32, 40))
    prompts = left_pad([encode("12+34="), encode("7-8="), encode("(1+2)*3=")])
    tokens = generate(model, prompts, 6, 1.0, 1.0, torch.Generator().manual_seed(0), repeats=4)
    full, ent_full = response_logprobs(model, prompts.repeat_interleave(4, 0), tokens, with_entropy=True)
    shared, ent_shared = response_logprobs(model, prompts, tokens, with_entropy=True, repeats=4)
    assert torch.allclose(full, shared, atol=1e-5) and torch.allclose(ent_full, ent_shared, atol=1e-5)
    g_full = torch.autograd.grad(full.sum(), list(model.parameters()))
    g_shared = torch.autograd.grad(shared.sum(), list(model.parameters()))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g_full, g_shared))
    with pytest.raises(ValueError, match="3 prompts x 2 repeats != 12 responses"):
        response_logprobs(model, prompts, tokens, repeats=2)


def test_generation_with_repeats_prefills_once_and_matches_expanded_prompts():
    torch.manual_seed(4)
    model = GPT(GPTConfig(len(VOCAB), 2, 2, 32, 40)).eval()
    prompts = left_pad([encode("12+34="), encode("7-8=")])
    a = generate(model, prompts, 8, temperature=0.0, repeats=3)
    b = generate(model, prompts.repeat_interleave(3, 0), 8, temperature=0.0)
    assert a.shape == (6, 8) and torch.equal(a, b)
    sampled = generate(model, prompts, 8, 1.0, 1.0, torch.Generator().manual_seed(0), repeats=3)
    again = generate(model, prompts, 8, 1.0, 1.0, torch.Generator().manual_seed(0), repeats=3, use_cache=False)
    assert torch.equal(sampled, again)
    with pytest.raises(ValueError, match="repeats must be a positive integer, got 0"):
        generate(model, prompts, 8, repeats=0)


@pytest.mark.parametrize("objective", available())
def test_one_rl_step_changes_the_parameters(objective, micro, tmp_path):
    trainer = start_run(make_config(objective, "cpu-tiny", 0, micro, steps=1), tmp_path, quiet=True)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert {"reward/mean", "accuracy", "grad/norm", "delta/m3", "val/ood_accuracy"} <= set(row)
    # every metric the objective returns is logged (no prefix list drops one, e.g. drive/abs_mean)
    batch = O.PolicyBatch(logp=torch.zeros(4, 2), logp_old=torch.zeros(4, 2), mask=torch.ones(4, 2),
                          group=torch.tensor([0, 0, 1, 1]), rewards=torch.tensor([1.0, 0.0, 0.0, 1.0]),
                          logp_ref=torch.zeros(4, 2), chosen=torch.tensor([0, 3]), rejected=torch.tensor([1, 2]))
    assert set(O.get(objective)(batch)[1]) <= set(row)


def test_resume_reproduces_the_uninterrupted_run(micro, tmp_path, monkeypatch):
    assert_resume_is_exact(make_config("opo", "cpu-tiny", 3, micro, steps=4), tmp_path, monkeypatch)


def test_bad_input_fails_before_work(micro, tmp_path, capsys):
    assert main(["train", "--objective", "nope", "--out", str(tmp_path)]) == 2
    assert main(["train", "--objective", "opo", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert main(["train", "--objective", "opo", "--out", str(tmp_path), "--set", "lr=abc"]) == 2
    assert main(["train", "--objective", "opo", "--out", str(tmp_path), "--set", "objective.mu=0"]) == 2
    err = capsys.readouterr().err
    assert "unknown objective 'nope'" in err and "unknown preset 'huge'" in err
    assert "bad value 'abc' for lr" in err and "mu must be a finite number > 0" in err
    start_run(make_config("opo", "cpu-tiny", 0, micro, steps=1), tmp_path / "a", quiet=True).run()
    with pytest.raises(ValueError, match="holds a different run") as err:
        start_run(make_config("grpo", "cpu-tiny", 0, micro, steps=1), tmp_path / "a", quiet=True)
    # the refusal names each differing key with both values, and how to resume as well as how to start anew
    assert "objective: 'opo' stored, 'grpo' requested" in str(err.value)
    assert "to resume it, pass the stored values (--objective opo) with --resume" in str(err.value)


def test_gpu_small_preset_has_at_least_10m_parameters():
    cfg = make_config("opo", "gpu-small", 0, ["device=cpu"])
    assert sum(p.numel() for p in GPT(model_config(cfg, 16)).parameters()) >= 10_000_000


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_small_runs_two_steps(tmp_path):
    cfg = make_config("opo", "gpu-small", 0, ["sft_max_steps=20", f"sft_cache={tmp_path / 'sft'}"], steps=2)
    start_run(cfg, tmp_path / "run", quiet=True).run()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_out_of_memory_is_one_line(monkeypatch, tmp_path, capsys):
    def oom(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nlong allocator report")
    monkeypatch.setattr("opo_theory.lm.training.trainer.prepare_run_dir", lambda *a: False)
    monkeypatch.setattr("opo_theory.lm.training.sft.task_pools", lambda cfg: {})
    monkeypatch.setattr("opo_theory.lm.training.sft.warm_start", lambda cfg, pools, quiet=False: (None, {}))
    monkeypatch.setattr(Trainer, "__init__", lambda self, *a, **k: setattr(self, "step", 0))
    monkeypatch.setattr(Trainer, "run", oom)
    assert main(["train", "--objective", "opo", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["opo-theory: error: CUDA out of memory. Tried to allocate 2.00 GiB -- lower prompts_per_step, "
                   "group_size or max_new (--set), or pick a smaller --preset/--model; --resume continues from the "
                   "last checkpoint"]


def test_a_gpu_preset_without_a_gpu_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--objective", "opo", "--preset", "gpu-small", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("opo-theory: error: preset 'gpu-small' needs a GPU (device 'cuda') and "
                                               "CUDA is not available; on a CPU use --preset cpu-tiny")
    assert not (tmp_path / "r").exists()


def test_rollout_type_groups_and_one_informative_definition():
    from opo_theory.lm.training.rollout import Rollout, concat, groups_of
    from opo_theory.objectives.shaping import informative_groups, informative_rows

    g = torch.Generator().manual_seed(0)
    r = torch.randint(0, 2, (40, 4), generator=g).float() * 0.5 + 0.1     # 0.1 / 0.6: many all-equal groups
    inf = informative_rows(r)
    assert torch.equal(inf, r.max(1).values > r.min(1).values) and torch.equal(~inf, r.std(1) == 0)
    assert torch.equal(inf.repeat_interleave(4), informative_groups(r.reshape(-1), torch.arange(40).repeat_interleave(4)))
    assert 0 < int(inf.sum()) < 40
    ro = Rollout(torch.arange(40 * 3).view(40, 3), torch.arange(160 * 5).view(160, 5), r.reshape(-1),
                 (r.reshape(-1) > 0.5).float())
    assert ro.group_size == 4 and torch.equal(ro.informative(), inf) and ro.accuracy == float((r > 0.5).float().mean())
    keep = inf.nonzero().flatten()
    part = groups_of(ro, keep)
    assert torch.equal(part.prompts, ro.prompts[keep]) and torch.equal(part.rewards.view(-1, 4), r[keep])
    assert torch.equal(part.tokens.view(-1, 4, 5), ro.tokens.view(40, 4, 5)[keep]) and bool(part.informative().all())
    narrow = Rollout(ro.prompts[:1], ro.tokens[:4, :2], ro.rewards[:4], ro.correct[:4])
    empty = groups_of(ro, keep[:0])                                         # a part with no group keeps its width
    whole = concat([narrow, part, empty], pad_id=-1)
    assert whole.tokens.shape == (4 + len(part.tokens), 5) and bool((whole.tokens[:4, 2:] == -1).all())
    assert torch.equal(whole.rewards, torch.cat([narrow.rewards, part.rewards]))
    with pytest.raises(ValueError, match="G responses per prompt"):
        Rollout(ro.prompts[:3], ro.tokens[:10], ro.rewards[:10])
    with pytest.raises(ValueError, match="does not track correctness"):
        _ = Rollout(ro.prompts, ro.tokens, ro.rewards).accuracy
