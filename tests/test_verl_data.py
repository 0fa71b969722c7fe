"""The verl data exporter and reward function (opo_theory.integrations.verl_data); verl itself is not needed.

verl's own reader (RLHFDataset) and reward loader on the exported files: tests/verl_engine/test_verl_data_verl.py.
"""

import pytest

from opo_theory.integrations import verl_data
from opo_theory.lm.tasks.arithmetic import problems, question

pq = pytest.importorskip("pyarrow.parquet")
SOURCE = verl_data.DATA_SOURCE


def read(path):
    return pq.read_table(path).to_pylist()


def test_export_writes_verl_rows_for_both_splits(tmp_path):
    paths = verl_data.export(tmp_path / "data", level=2, train=7, val=3, seed=5, verifier="lenient", shaping=0.25)
    assert sorted(p.name for p in paths.values()) == ["train.parquet", "val.parquet"]
    for split, n in (("train", 7), ("val", 3)):
        got, want = read(paths[split]), problems(2, split, n, 5)
        assert len(got) == n
        for i, (row, p) in enumerate(zip(got, want)):
            assert row == {"data_source": SOURCE, "ability": "math",
                           "prompt": [{"role": "user", "content": question(p.prompt)}],
                           "reward_model": {"style": "rule", "ground_truth": p.answer},
                           "extra_info": {"split": split, "index": i, "level": 2, "raw_prompt": p.prompt,
                                          "verifier": "lenient", "shaping": 0.25}}
    train = {r["extra_info"]["raw_prompt"] for r in read(paths["train"])}
    assert not train & {r["extra_info"]["raw_prompt"] for r in read(paths["val"])}


def test_raw_prompt_format_and_determinism(tmp_path):
    a = verl_data.export(tmp_path / "a", level=1, train=4, val=2, prompt_format="raw")
    b = verl_data.export(tmp_path / "b", level=1, train=4, val=2, prompt_format="raw")
    rows_a = read(a["train"])
    assert rows_a == read(b["train"])
    assert [r["prompt"][0]["content"] for r in rows_a] == [p.prompt for p in problems(1, "train", 4, 0)]


@pytest.mark.parametrize("text, answer, info, score", [
    ("46", "46", None, 1.0), (" 46\n", "46", None, 1.0), ("45", "46", None, 0.0),
    ("45", "46", {"shaping": 0.5}, 0.5), ("x", "46", {"shaping": 0.5}, 0.0),
    ("12+34 = 46.", "46", {"verifier": "lenient"}, 1.0), ("12+34 = 46.", "46", None, 0.0),
    ("-3", -3, {"verifier": "strict", "shaping": 0.1, "num_turns": 1}, 1.0),
])
def test_compute_score_is_the_task_reward(text, answer, info, score):
    assert verl_data.compute_score(SOURCE, text, answer, info) == score


def test_compute_score_scores_what_the_exporter_wrote(tmp_path):
    paths = verl_data.export(tmp_path, level=3, train=5, val=1, verifier="lenient")
    for row in read(paths["train"]):
        truth, info = row["reward_model"]["ground_truth"], row["extra_info"]
        assert verl_data.compute_score(row["data_source"], f"The answer is {truth}.", truth, info) == 1.0
        assert verl_data.compute_score(row["data_source"], f"{int(truth) + 1}", truth, info) == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: verl_data.compute_score("openai/gsm8k", "1", "1"), "data_source 'opo_theory/arithmetic' only"),
    (lambda: verl_data.compute_score(SOURCE, "1", "1", {"verifier": "fuzzy"}), "unknown extra_info.verifier"),
    (lambda: verl_data.compute_score(SOURCE, "1", "1", {"shaping": -1}), "extra_info.shaping must be"),
    (lambda: verl_data.rows(2, "train", 2, prompt_format="plain"), "unknown prompt_format"),
    (lambda: verl_data.rows(9, "train", 2), "unknown level"),
    (lambda: verl_data.rows(1, "train", 10 ** 6), "level 1 has only 84"),
])
def test_bad_values_are_refused_in_one_line(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_export_refuses_bad_sizes_and_writes_nothing(tmp_path):
    for kwargs, message in (({"train": 0}, "train must be an integer >= 1"), ({"val": 1.5}, "val must be")):
        with pytest.raises(ValueError, match=message):
            verl_data.export(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_cli_writes_files_and_prints_the_overrides(tmp_path, capsys):
    assert verl_data.main([str(tmp_path), "--level", "1", "--train", "3", "--val", "2"]) == 0
    out = capsys.readouterr().out
    assert f"data.train_files={tmp_path / 'train.parquet'}" in out
    assert "reward.custom_reward_function.path=pkg://opo_theory.integrations.verl_data" in out
    assert len(read(tmp_path / "val.parquet")) == 2
    with pytest.raises(SystemExit) as exit_:
        verl_data.main([str(tmp_path), "--level", "7"])
    assert exit_.value.code == 2
    assert "unknown level 7" in capsys.readouterr().err
