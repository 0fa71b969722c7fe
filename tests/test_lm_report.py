"""The LM report's rules: pre-RL evaluation, DAPO shaping, data-scarce sampling, variants,
positive-quantity bands and figure writes that leave unchanged files alone."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from opo_theory.io import REPO_ROOT
from opo_theory.lm.experiments.compare import parse_variant, parse_variants, variant_config
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.rollout import collect, draw


def script(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), REPO_ROOT / "paper_repro" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- figures (statistics: tests/test_stats.py)

def test_colors_are_distinct_for_variants():
    from opo_theory.figures.style import OBJECTIVE_COLORS, colors

    names = ["opo", "grpo", "opo-released", "dapo-paper", "opo(mu=0.5)"]
    palette = colors(names)
    assert len(set(palette.values())) == len(names) and palette["opo"] == OBJECTIVE_COLORS["opo"]


# ---------------------------------------------------------------- variants

def test_variant_parsing_and_directory_names():
    v = parse_variant("opo(geometry=code,seq_logratio=mean,delta_clamp=5,normalization=released)")
    assert v.objective == "opo" and v.dirname == "opo+geometry=code+seq_logratio=mean+delta_clamp=5+normalization=released"
    cfg = variant_config(v, "cpu-tiny", 0)
    assert cfg.objective_config == {"geometry": "code", "seq_logratio": "mean", "delta_clamp": 5.0,
                                    "normalization": "released"}
    d = parse_variant("dapo-paper")
    assert d.dirname == "dapo-paper" and variant_config(d, "cpu-tiny", 0).dynamic_sampling
    assert [x.label for x in parse_variants(["opo", "opo(mu=0.5", "alpha=0.3)"])] == ["opo", "opo(mu=0.5,alpha=0.3)"]
    for bad, msg in (("opo(mu=0.5", "NAME(KEY=VALUE"), ("opo(nope=1)", "unknown key"), ("opo(mu=a/b)", "KEY=VALUE"),
                     ("opo(mu=1,mu=2)", "twice"), ("nope", "unknown objective"), ("opo(seed=1)", "own option")):
        with pytest.raises(ValueError, match=msg.replace("(", r"\(")):
            parse_variant(bad)
    with pytest.raises(ValueError, match="more than once"):
        parse_variants("opo(mu=0.5,alpha=0.3),opo(alpha=0.3,mu=0.5)")
    with pytest.raises(ValueError, match="range|must be"):
        variant_config(parse_variant("opo(mu=-1)"), "cpu-tiny", 0)


def test_new_settings_are_validated():
    with pytest.raises(ValueError, match="overlong_buffer must be at most max_new"):
        make_config("dapo", "cpu-tiny", 0, ["overlong_buffer=9"])
    with pytest.raises(ValueError, match="prompt_sampling=epochs needs"):
        make_config("opo", "cpu-tiny", 0, ["prompt_sampling=epochs", "train_fraction=0.001"])
    c = make_config("opo", "cpu-tiny-scarce", 0)
    assert c.rl_pool_size() == 400 and c.epochs() == pytest.approx(8.0)


# ---------------------------------------------------------------- trainer

def trainer(tmp_path, settings, objective="dapo", steps=2):
    from opo_theory.lm.training.trainer import start_run

    return start_run(make_config(objective, "cpu-tiny", 0, settings, steps), tmp_path / "run", quiet=True)


def test_pre_rl_record_is_the_policy_before_any_update(tmp_path, micro):
    t = trainer(tmp_path, micro)
    before = t.evaluate()
    t.run()
    rec = json.loads((tmp_path / "run" / "pre_rl.json").read_text())
    assert rec["val/accuracy"] == before["val/accuracy"] and rec["val/ood_accuracy"] == before["val/ood_accuracy"]
    assert 0 <= rec["train/sampled_accuracy"] <= 1 and rec["problems"] == 20
    from opo_theory.figures import runs
    assert runs.PRE_RL_FILE == "pre_rl.json"


def test_dynamic_sampling_trains_on_informative_groups(tmp_path, micro):
    t = trainer(tmp_path, micro + ["dynamic_sampling=true", "dynamic_sampling_rounds=50", "shaping=0.5"])
    batch, first, extra = collect(t.cfg, t._rollout, t.vocab.pad_id)
    r = batch.rewards.view(-1, t.cfg.group_size)
    assert len(batch.prompts) == t.cfg.prompts_per_step and batch.tokens.shape[0] == len(batch.rewards)
    assert extra["sampling/informative_share"] == 1.0 and bool((r.max(1).values > r.min(1).values).all())
    assert bool(batch.informative().all())
    assert first.rewards.shape == first.correct.shape == (t.cfg.prompts_per_step * t.cfg.group_size,)
    assert batch.correct.shape == batch.rewards.shape      # each kept response keeps its own correctness
    capped = trainer(tmp_path / "c", micro + ["dynamic_sampling=true", "dynamic_sampling_rounds=1", "shaping=0.5"])
    b2, f2, e2 = collect(capped.cfg, capped._rollout, capped.vocab.pad_id)
    assert e2["sampling/rounds"] == 1 and len(b2.prompts) == capped.cfg.prompts_per_step
    assert torch.equal(b2.rewards.sort()[0], f2.rewards.sort()[0]) and torch.equal(b2.correct.sort()[0], f2.correct.sort()[0])


def test_overlong_penalty_enters_the_reward(tmp_path, micro):
    from opo_theory.lm.models.sampling import response_mask
    from opo_theory.objectives.shaping import overlong_penalty

    t = trainer(tmp_path, micro + ["overlong_buffer=6"])
    torch.manual_seed(0)
    ro = t._rollout()
    tokens, rewards, correct = ro.tokens, ro.rewards, ro.correct
    lengths = response_mask(tokens, t.vocab).sum(1)
    expected = correct.to(rewards) + overlong_penalty(lengths, t.cfg.max_new, 6).to(rewards)
    assert torch.allclose(rewards, expected) and bool((lengths > 2).any())


def test_epoch_sampling_draws_each_problem_once_per_pass(tmp_path, micro):
    t = trainer(tmp_path, micro + ["train_fraction=0.04", "prompt_sampling=epochs"])   # 12 problems
    n = len(t.rl_pool)
    assert n == 12
    drawn, cursor = draw(t.cfg, n, t.gen, t.cursor, 2 * n + 5)
    assert sorted(drawn[:n]) == list(range(n)) and sorted(drawn[n:2 * n]) == list(range(n))
    assert drawn[:n] != drawn[n:2 * n] and cursor == 2 * n + 5


# ---------------------------------------------------------------- figures

def test_unchanged_figure_data_is_not_rewritten(tmp_path, monkeypatch):
    from opo_theory.figures import style

    with style.writing_to(tmp_path):
        path = style.save_data("x", {"a": 1.0}, {})
        first = path.read_text()
        monkeypatch.setattr(style, "provenance", lambda: {"git_revision": "another"})
        style.save_data("x", {"a": 1.0}, {})
        assert path.read_text() == first                 # same numbers: provenance alone does not rewrite it
        style.save_data("x", {"a": 2.0}, {})
        assert json.loads(path.read_text())["provenance"] == {"git_revision": "another"}


def rows(eff: float, steps: int = 20) -> list[dict]:
    return [{"step": s, "grad/response_efficiency": eff * (1 + 0.01 * (s % 3)), "grad/norm": 2.0} for s in range(steps)]


def test_fig7_ratio_verdict_against_the_paper():
    fig7 = script("fig7-saturation")
    below = fig7.ratio_verdict({"opo": [rows(1.4), rows(1.5), rows(1.3)], "grpo": [rows(1.0)] * 3},
                               "grad/response_efficiency")
    assert below["call"] == "below" and below["verdict"] == "refuted"
    assert below["windows"]["0.2"]["ratio"] == pytest.approx(1.4, rel=0.05)
    near = fig7.ratio_verdict({"opo": [rows(1.2), rows(1.3), rows(1.25)], "grpo": [rows(0.25)] * 3},
                              "grad/response_efficiency")
    assert near["call"] == "inside" and near["verdict"] == "verified"
    wide = fig7.ratio_verdict({"opo": [rows(1.0), rows(3.0), rows(0.3)], "grpo": [rows(0.25)] * 3},
                              "grad/response_efficiency")
    assert wide["call"] == "overlaps" and wide["verdict"] == "undetermined"
    assert fig7.ratio_verdict({"opo": [rows(1.0)]}, "grad/response_efficiency") is None


def test_opo_is_tested_against_the_baselines_not_its_own_variants():
    from opo_theory.lm.experiments.compare import is_opo_variant, verdict_from_runs
    assert is_opo_variant("opo-released") and is_opo_variant("gopo") and not is_opo_variant("dapo-paper")
    rng = np.random.default_rng(3)
    runs = {name: [[{"step": s, "reward/mean": level + rng.normal(0, 0.001)} for s in range(20)] for _ in range(3)]
            for name, level in (("opo", 0.6), ("opo-released", 0.2), ("grpo", 0.4), ("dapo-paper", 0.41))}
    v = verdict_from_runs(runs, "reward/mean", "reward")
    assert set(v["baselines"]) == {"grpo", "dapo-paper"} and v["not_tested"] == ["opo-released"]
    assert v["verdict"] == "verified" and "Holm over 2 baselines" in v["text"]


def test_fig5_late_improvement_needs_long_runs():
    fig5 = script("fig5-reward")
    short = {"opo": [[{"step": s, "reward/mean": 0.5} for s in range(100)]] * 3}
    assert fig5.after_late(short)["after_step_100"] is None
    rng = np.random.default_rng(0)
    grow = [[{"step": s, "reward/mean": 0.5 + 0.001 * s + rng.normal(0, 0.01)} for s in range(300)] for _ in range(3)]
    flat = [[{"step": s, "reward/mean": 0.6 + rng.normal(0, 0.01)} for s in range(300)] for _ in range(3)]
    late = fig5.after_late({"opo": grow, "grpo": flat})["after_step_100"]
    assert late["verdict"] == "verified" and late["change"]["opo"]["verdict"] == "improved"
    # judged on the paired difference of changes, not on which change is significant
    assert fig5.after_late({"opo": flat, "grpo": grow})["after_step_100"]["verdict"] == "refuted"
    both = fig5.after_late({"opo": grow, "grpo": [[dict(r) for r in rows] for rows in grow]})["after_step_100"]
    assert both["change"]["opo"]["verdict"] == "improved" and both["verdict"] == "undetermined"   # identical changes


def test_the_audit_regimes_verdict_follows_each_committed_audit(tmp_path, monkeypatch):
    import shutil

    report = script("report")
    committed = report.RUNS_DIR
    sft, confident = committed / "audit" / "audit.json", committed / "audit-confident" / "audit.json"
    if not (sft.exists() and confident.exists()):
        pytest.skip("the committed audits are regenerated by paper_repro/regen_audits.sh")
    from opo_theory.lm.experiments.audit import mechanism_verdict

    verdict = {p: mechanism_verdict(json.loads(p.read_text())["summary"])["overall"] for p in (sft, confident)}
    for directory, source in (("audit", sft), ("audit-confident", confident)):
        (tmp_path / directory).mkdir()
        shutil.copy(source, tmp_path / directory / "audit.json")
    monkeypatch.setattr(report, "RUNS_DIR", tmp_path)
    text = "\n".join(report.audit_regimes_section())
    assert "`audit-trainer/opo`: not committed." in text
    assert f"audit {verdict[sft]}, audit-confident {verdict[confident]}" in text or verdict[sft] == verdict[confident]
    shutil.copy(confident, tmp_path / "audit" / "audit.json")         # the same audit in both regimes: one verdict
    text = "\n".join(report.audit_regimes_section())
    assert f"the same in every committed regime: {verdict[confident]}" in text
