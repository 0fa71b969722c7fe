"""Every JSON / JSON-lines file the toolkit writes, and every committed one, is strict RFC 8259 JSON."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import micro_settings

from opo_theory.bandit.experiments import EXPERIMENTS
from opo_theory.cli import main
from opo_theory.io import REPO_ROOT, dumps_json, json_line, to_strict_json, write_json_atomic

SMALL_BANDIT = {  # each experiment in well under a second
    "saturation": ["points=20"],
    "dynamics": ["arms=3", "seeds=2", "steps=3", "group_size=2"],
    "grid": ["alphas=0.5", "mus=1.0", "seeds=2", "arms=3", "outer=2", "inner=2", "n_boot=2"],
    "approx": ["arms=3", "seeds=2", "etas=0.1,30", "inner_steps=1"],       # eta 30: delta >= 1, nulls
    "positivity": ["arms=3", "instances=4", "mus=1.0", "scales=1.0"],
    "kl-vs-chi2": ["arms=3", "scales=1.0,2.0"],
}


def _refuse(constant: str):
    raise ValueError(f"non-standard JSON constant {constant}")


def strict_loads(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (what jq and JavaScript refuse)."""
    return json.loads(text, parse_constant=_refuse)


def check_file(path: Path) -> int:
    """Parse ``path`` strictly (each line of a .jsonl); returns the number of documents read."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        lines = [ln for ln in text.splitlines() if ln]
        for i, line in enumerate(lines):
            try:
                strict_loads(line)
            except ValueError as exc:
                raise AssertionError(f"{path}: line {i + 1} is not strict JSON: {exc}") from None
        return len(lines)
    try:
        strict_loads(text)
    except ValueError as exc:
        raise AssertionError(f"{path} is not strict JSON: {exc}") from None
    return 1


def check_tree(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
    for p in files:
        check_file(p)
    return files


def test_strict_encoder_replaces_non_finite_values_everywhere():
    obj = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": (np.float32("nan"), np.int64(3)),
           "d": torch.tensor([1.0, float("nan")]), "e": np.array([[np.inf]]), "f": torch.tensor(2.5),
           "g": {"h": np.float64(-np.inf), "i": True, "j": None, "k": "NaN"}}
    got = to_strict_json(obj)
    assert got == {"a": None, "b": [None, None, 1.5], "c": [None, 3], "d": [1.0, None], "e": [[None]],
                   "f": 2.5, "g": {"h": None, "i": True, "j": None, "k": "NaN"}}
    assert strict_loads(dumps_json(obj)) == got
    line = json_line({"step": 0, "approx/lemma_bound": math.nan})
    assert line == '{"step": 0, "approx/lemma_bound": null}\n'
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        to_strict_json(object())


def test_write_json_atomic_is_strict(tmp_path):
    path = write_json_atomic(tmp_path / "x.json", {"v": [math.nan, 1.0]})
    assert strict_loads(path.read_text()) == {"v": [None, 1.0]}


def test_every_committed_json_file_under_figures_is_strict():
    files = check_tree(REPO_ROOT / "figures")
    assert any(p.suffix == ".jsonl" for p in files) and len(files) > 20


def test_claims_json_output_is_strict(capsys):
    assert main(["claims", "--json", "--id", "log-ratio-error", "--id", "positivity"]) == 0
    claims = strict_loads(capsys.readouterr().out)
    assert [c["id"] for c in claims] == ["log-ratio-error", "positivity"]


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_bandit_json_and_out_are_strict(experiment, tmp_path, capsys):
    argv = ["bandit", experiment, "--json", "--out", str(tmp_path / "res" / "out.json")]
    for s in SMALL_BANDIT[experiment]:
        argv += ["--set", s]
    assert main(argv) == 0
    printed = strict_loads(capsys.readouterr().out)
    assert printed["config"] and check_tree(tmp_path) == [tmp_path / "res" / "out.json"]
    if experiment == "approx":      # delta >= 1 at eta = 30: Lemma A.1 not applicable, written as null
        assert any(r["lemma_holds"] is None for r in printed["rows"])


def test_figures_write_strict_json_to_the_chosen_directory(tmp_path, capsys):
    before = {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "figures").glob("*.*")}
    assert main(["figures", "table1", "fig7-saturation", "fig1-geometry", "--out", str(tmp_path / "figs")]) == 0
    written = check_tree(tmp_path)
    assert {p.name for p in written} == {"table1.json", "fig7-saturation.json", "fig1-geometry.json"}
    assert (tmp_path / "figs" / "table1.md").exists() and (tmp_path / "figs" / "fig1-geometry.png").exists()
    assert {p: p.stat().st_mtime_ns for p in (REPO_ROOT / "figures").glob("*.*")} == before   # repo untouched


@pytest.fixture(scope="module")
def micro(sft_cache):
    return micro_settings("shaping=0.5", cache=sft_cache)          # tests/test_lm.py's micro settings


def _lm_argv(command: list[str], settings: list[str]) -> list[str]:
    argv = command + ["--steps", "2", "--quiet"]
    for s in settings:
        argv += ["--set", s]
    return argv


def test_compare_writes_only_strict_json(micro, tmp_path, capsys):
    argv = _lm_argv(["compare", "--objectives", "opo,grpo", "--seeds", "1", "--out", str(tmp_path / "cmp")], micro)
    assert main(argv) == 0
    names = {p.relative_to(tmp_path / "cmp").as_posix() for p in check_tree(tmp_path / "cmp")}
    assert names == {"summary.json", "opo/seed0/config.json", "opo/seed0/metrics.jsonl", "opo/seed0/pre_rl.json",
                     "grpo/seed0/config.json", "grpo/seed0/metrics.jsonl", "grpo/seed0/pre_rl.json"}
    summary = strict_loads((tmp_path / "cmp" / "summary.json").read_text())
    assert summary["table"]["opo"]["final_reward"]["ci95"] is None       # one seed: no interval, null


def test_train_metrics_with_undefined_values_are_strict(micro, tmp_path, capsys):
    """lr = 0.5 moves the policy far from its anchor (delta >= 1), so Lemma A.1's bound is undefined:
    metrics.jsonl must hold null there, not a bare NaN. Needs the trainer to write its rows with
    opo_theory.io.json_line."""
    assert main(_lm_argv(["train", "--objective", "opo", "--out", str(tmp_path / "run")], micro + ["lr=0.5"])) == 0
    assert check_tree(tmp_path) == [tmp_path / "run" / "config.json", tmp_path / "run" / "metrics.jsonl",
                                    tmp_path / "run" / "pre_rl.json"]
    rows = [strict_loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["approx/delta_inf"] >= 1 and r["approx/lemma_bound"] is None for r in rows)
