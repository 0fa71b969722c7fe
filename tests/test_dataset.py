"""A user's own dataset (the ``dataset`` setting, opo_theory.lm.tasks.dataset): formats, bad files, the seeded split,
its hash in the run identity and SFT key, and tiny trainings through train, compare, audit and --engine trl."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from opo_theory.io import REPO_ROOT
from opo_theory.lm.models.backend import model_fingerprint
from opo_theory.lm.tasks.arithmetic import question, reward
from opo_theory.lm.tasks.dataset import Row, chat_text, parse, split
from opo_theory.lm.training.config import (
    PRESETS,
    RL_ONLY_FIELDS,
    RUNTIME_FIELDS,
    TrainConfig,
    make_config,
    settable_fields,
)
from opo_theory.lm.training.sft import task_pools

SUMS = REPO_ROOT / "examples" / "data" / "sums.jsonl"
TINY = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=0", "val_size=8", "prompts_per_step=2",
        "group_size=2", "max_new=4", "val_every=2", "checkpoint_every=2", "minibatches=1"]


def write(tmp_path: Path, rows: list, name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def sums(n: int) -> list[dict]:
    return [{"prompt": f"{i}+{i}=", "answer": str(2 * i)} for i in range(n)]


def config(path: Path | str, *settings: str, **kw) -> TrainConfig:
    return make_config("opo", "cpu-tiny", 0, [*TINY, f"dataset={path}", *settings], **kw)


def test_a_line_ends_only_at_a_newline():
    got = parse('{"prompt": "a\u2028b", "answer": "1"}\r\n{"prompt": "c", "answer": "2"}'.encode(), "d")
    assert [(p.prompt, p.answer, p.line) for p in got] == [("a\u2028b", "1", 1), ("c", "2", 2)]


def test_the_formats_of_trl_and_verl_rows_are_read():
    rows = [{"prompt": "1+1=", "answer": "2"}, "", {"prompt": "1+2=", "solution": "3"},
            {"prompt": "1+3=", "completion": " 4 "},
            {"prompt": [{"role": "user", "content": "1+4="}], "reward_model": {"style": "rule", "ground_truth": 5},
             "data_source": "x", "extra_info": {"split": "train"}}]
    got = parse("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode(), "d")
    assert [(p.prompt, p.answer, p.line) for p in got] == [("1+1=", "2", 1), ("1+2=", "3", 3), ("1+3=", "4", 4),
                                                           ("1+4=", "5", 5)]


@pytest.mark.parametrize(("text", "message"), [
    ("", r"dataset .*d\.jsonl is empty"),
    ("\n\n", r"dataset .*d\.jsonl is empty"),
    ('{"prompt": "1=", "answer": "1"}\n{"prompt": "2=", "answer": \n', r"d\.jsonl line 2 is not JSON"),
    ('[1, 2]\n', r"d\.jsonl line 1 is not a JSON object"),
    ('{"question": "1=", "answer": "1"}\n', r"d\.jsonl line 1: no 'prompt' field \(keys: question, answer\)"),
    ('{"prompt": "1="}\n', r"d\.jsonl line 1: no answer field \(one of answer, solution, completion or "
                          r"reward_model\.ground_truth\)"),
    ('{"prompt": "1=", "answer": ""}\n', r"d\.jsonl line 1: the answer is empty"),
    ('{"prompt": 3, "answer": "1"}\n', r"d\.jsonl line 1: the prompt must be a string"),
    ('{"prompt": "1=", "answer": true}\n', r"d\.jsonl line 1: the answer must be a string"),
    ('{"prompt": [{"role": "system", "content": "x"}], "answer": "1"}\n', r"line 1: a chat prompt must be one user"),
    ('{"prompt": "1=", "answer": "1"}\n{"prompt": "1=", "answer": "2"}\n', r"line 2 repeats the prompt of line 1"),
])
def test_a_bad_file_is_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "d.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        task_pools(config(path))
    assert "\n" not in str(err.value)


def test_a_missing_file_is_refused_when_the_config_is_made(tmp_path):
    with pytest.raises(ValueError, match=r"dataset .*nope\.jsonl: no such file"):
        config(tmp_path / "nope.jsonl")


def test_the_split_is_seeded_disjoint_and_holds_out_at_most_a_fifth():
    items = [Row(f"{i}=", str(i), i + 1) for i in range(50)]
    a, b, other = split(items, 200, 1000, 0), split(items, 200, 1000, 0), split(items, 200, 1000, 1)
    assert a == b and a != other and a["ood"] == []
    assert len(a["val"]) == 10 and len(a["train"]) == 40 and not set(a["val"]) & set(a["train"])
    assert len(split(items, 3, 1000, 0)["val"]) == 3 and len(split(items, 3, 7, 0)["train"]) == 7
    assert split(items, 3, 1000, 0)["val"] == a["val"][:3]           # val_size takes from the same permutation
    assert split(items, 3, 7, 0)["train"] == split(items, 3, 1000, 0)["train"][:7]


def test_too_few_problems_for_prompts_per_step_is_refused(tmp_path):
    path = write(tmp_path, sums(10))                  # 2 held out, 8 left
    assert len(task_pools(config(path, "prompts_per_step=8"))["train"]) == 8
    with pytest.raises(ValueError, match=r"d\.jsonl has too few problems for prompts_per_step=10: 10 problems, 2 held "
                                         r"out for validation, 8 left for RL"):
        task_pools(config(path, "prompts_per_step=10", "minibatches=1"))


def test_train_fraction_needs_a_pool_size_the_file_fills(tmp_path):
    path = write(tmp_path, sums(50))                  # 8 held out (val_size), 42 left
    with pytest.raises(ValueError, match=r"train_fraction=0.5 is a share of pool_size \(4000\), but dataset .* leaves "
                                         r"42 training problems: set pool_size=42"):
        task_pools(config(path, "train_fraction=0.5"))
    cfg = config(path, "train_fraction=0.5", "pool_size=42")
    assert len(task_pools(cfg)["train"]) == 42 and cfg.rl_pool_size() == 21


def test_a_character_outside_the_char_vocabulary_names_it_and_its_line(tmp_path):
    path = write(tmp_path, [*sums(5), {"prompt": "two plus two", "answer": "4"}])
    with pytest.raises(ValueError, match=r"d\.jsonl line 6: character 't' in the prompt is not in the char GPT's "
                                         r"vocabulary '0123456789\+-\*\(\)= '"):
        task_pools(config(path))


def test_the_lenient_verifier_needs_numeric_answers_and_exact_compares_text(tmp_path):
    path = write(tmp_path, [*sums(5), {"prompt": "9=", "answer": "nine"}])
    with pytest.raises(ValueError, match=r"line 6: answer 'nine' is not a number, which the lenient verifier needs"):
        task_pools(config(path, "verifier=lenient"))
    assert reward(" nine\n", "nine", 0.5, "exact") == (1.0, True)
    assert reward("ten", "nine", 0.5, "exact") == (0.5, False) and reward("  ", "nine", 0.5, "exact") == (0.0, False)


def test_chat_prompts_of_a_dataset_are_sent_as_written(tmp_path):
    """prompt_format=chat: the user turn is the built-in task's question, or a dataset's prompt as written (the
    toolkit's engine and the TRL dataset alike)."""
    pytest.importorskip("transformers")
    from opo_theory.lm.models.hf import hf_vocabulary
    from opo_theory.lm.models.tiny_hf import train_tokenizer

    assert chat_text(make_config("opo", "cpu-tiny", 0, TINY)) is question
    own = chat_text(config(SUMS))
    tok = train_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}={% endfor %}"
    shown = {ask: tok.decode(hf_vocabulary(tok, "t", "chat", ask).encode_prompt("1+2+3=")) for ask in (question, own)}
    assert shown[own] == "1+2+3==" and shown[question] != shown[own]      # (letters are outside this tokenizer)
    pytest.importorskip("datasets")
    from opo_theory.integrations.trl_run import train_dataset

    cfg = config(SUMS, "prompt_format=chat", model="smollm2-135m")
    data = train_dataset(cfg)
    assert data["answer"] == [p.answer for p in task_pools(cfg)["train"]] and data[0]["prompt"] == [{"role": "user", "content": data[0]["prompt"][0]["content"]}]
    assert not data[0]["prompt"][0]["content"].startswith("What is")


def test_the_hash_of_the_file_is_in_the_identity_and_the_sft_key(tmp_path):
    path = write(tmp_path, sums(20))
    first = config(path)
    assert first.dataset_sha256 and first.identity()["dataset_sha256"] == first.dataset_sha256
    path.write_text(path.read_text().replace('"38"', '"39"'))       # one answer changed
    second = config(path)
    assert second.dataset_sha256 != first.dataset_sha256
    assert second.identity() != first.identity() and second.sft_key() != first.sft_key()
    with pytest.raises(ValueError, match=r"d\.jsonl changed since this run was configured"):
        task_pools(first)
    assert TrainConfig(**first.to_json()) == first                    # a run's config.json reads back as it was
    moved = tmp_path / "moved.jsonl"
    moved.write_bytes(path.read_bytes())
    assert config(moved).sft_key() == second.sft_key() and config(moved).identity() != second.identity()
    assert "dataset_sha256" not in {f.name for f in settable_fields()}


def test_committed_runs_keep_their_identity():
    """Configs without a dataset write no dataset keys: committed config.json files read back unchanged."""
    paths = sorted((REPO_ROOT / "figures" / "runs").glob("*/*/seed0/config.json"))
    assert paths
    for path in paths:
        stored = json.loads(path.read_text())["config"]
        written = TrainConfig(**stored).to_json()
        assert {k: written[k] for k in stored} == stored, path
        assert set(written) - set(stored) <= set(RUNTIME_FIELDS), path     # runtime settings added since


@pytest.mark.parametrize("preset", PRESETS)
def test_without_a_dataset_the_sft_key_hashes_what_it_hashed_before(preset):
    """The key of a config without a dataset is the hash of the fields it had before the dataset fields: every
    cached warm-up is found again."""
    cfg = make_config("opo", preset)
    before = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
              if f.name not in RL_ONLY_FIELDS | {"dataset", "dataset_sha256"}}
    if cfg.model != "char-gpt":
        before["model"] = model_fingerprint(cfg.model)
    blob = json.dumps(before, sort_keys=True, default=str)
    assert cfg.sft_key() == hashlib.sha256(blob.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------ tiny trainings through the CLI
def cli(*argv: str) -> int:
    from opo_theory.cli import main
    return main(list(argv))


def sets(*settings: str) -> list[str]:
    return [x for s in settings for x in ("--set", s)]


def test_train_on_a_dataset_and_a_changed_file_is_another_run(tmp_path, capsys):
    data = tmp_path / "sums.jsonl"
    data.write_bytes(SUMS.read_bytes())
    out = tmp_path / "run"
    args = ["train", "--objective", "opo", "--out", str(out), "--quiet", *sets(*TINY, f"dataset={data}", "steps=2")]
    assert cli(*args) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[-1]["val/accuracy"] is not None and rows[-1]["val/ood_accuracy"] is None
    assert json.loads((out / "config.json").read_text())["config"]["dataset"] == str(data)
    assert cli(*args, "--resume") == 0 and "unchanged" in capsys.readouterr().out
    data.write_text(data.read_text().replace('"16"', '"17"', 1))       # one answer changed
    assert cli(*args, "--resume") == 2
    assert "dataset_sha256" in capsys.readouterr().err


def test_compare_on_a_dataset(tmp_path, capsys):
    assert cli("compare", "--objectives", "opo,grpo", "--seeds", "1", "--out", str(tmp_path / "cmp"), "--quiet",
               *sets(*TINY, f"dataset={SUMS}", "steps=2")) == 0
    assert "grpo" in capsys.readouterr().out


def test_audit_on_a_dataset(tmp_path):
    out = tmp_path / "audit"
    assert cli("audit", "--objectives", "opo,grpo", "--seeds", "3", "--updates", "1", "--out", str(out), "--quiet",
               *sets(*TINY, f"dataset={SUMS}")) == 0
    assert json.loads((out / "audit.json").read_text())["settings"]["config"]["dataset"] == str(SUMS)


def test_engine_trl_on_a_dataset(tmp_path):
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", "llama", layers=1, width=32, heads=2)
    out = tmp_path / "trl"
    assert cli("train", "--engine", "trl", "--model", f"hf:{model}", "--objective", "opo", "--out", str(out), "--quiet",
               *sets("steps=1", "prompts_per_step=2", "group_size=4", "max_new=4", "minibatches=1",
                     f"dataset={SUMS}")) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    bad = write(tmp_path, [{"prompt": "1="}])
    assert cli("train", "--engine", "trl", "--model", f"hf:{model}", "--objective", "opo", "--out",
               str(tmp_path / "bad"), "--quiet", *sets(f"dataset={bad}")) == 2
    assert not (tmp_path / "bad").exists()
