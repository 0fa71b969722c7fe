"""The LM report's rules: ranking verdicts, pre-RL evaluation, DAPO shaping, data-scarce sampling, variants,
positive-quantity bands and figure writes that leave unchanged files alone."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from opo_theory.io import REPO_ROOT
from opo_theory.lm.compare import (
    change_verdict,
    holm,
    mean_ci95,
    mean_ci95_log,
    paired_p,
    parse_variant,
    parse_variants,
    ranking_verdict,
    variant_config,
    window_mean,
)
from opo_theory.lm.config import make_config
from opo_theory.lm.rollout import collect, draw

MICRO = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=30", "pool_size=300", "val_size=20",
         "train_level=2", "ood_level=3", "val_every=2", "sft_batch=32", "checkpoint_every=2", "prompts_per_step=4"]


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return MICRO + [f"sft_cache={tmp_path_factory.mktemp('sft')}"]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), REPO_ROOT / "paper_repro" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- ranking verdict

def synthetic(gap: float, noise: float, seeds: int = 3, windows=(0.1, 0.2, 0.5)) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for w in windows:
        base = rng.normal(0.5, 0.05, seeds)          # shared per seed: the paired design
        out[w] = {"a": list(base + gap + rng.normal(0, noise, seeds)), "b": list(base + rng.normal(0, noise, seeds)),
                  "c": list(base - gap + rng.normal(0, noise, seeds))}
    return out


def test_ranking_indistinguishable_for_overlapping_data():
    v = ranking_verdict(synthetic(gap=0.005, noise=0.05))
    assert v["verdict"] == "indistinguishable" and v["separated"] == []
    assert v["text"].startswith("indistinguishable")


def test_ranking_ranks_separated_data():
    v = ranking_verdict(synthetic(gap=0.2, noise=0.001))
    assert v["verdict"] == "ranked"
    assert {(s["better"], s["worse"]) for s in v["separated"]} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert v["order"] == ["a", "b", "c"] and v["text"].startswith("a ranks first")


def test_ranking_needs_every_window_and_enough_seeds():
    data = synthetic(gap=0.2, noise=0.001)
    data[0.5] = {"a": data[0.5]["c"], "b": data[0.5]["b"], "c": data[0.5]["a"]}    # order flips in one window
    flipped = ranking_verdict(data)
    assert ("a", "c") not in {(s["better"], s["worse"]) for s in flipped["separated"]}
    two = ranking_verdict(synthetic(gap=0.2, noise=0.001, seeds=2))
    assert two["verdict"] == "indistinguishable" and "fewer than 3 seeds" in two["text"]


def test_paired_p_is_scipy_ttest_rel_and_holm_matches_hand_values():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5), rng.normal(size=5)
    assert paired_p(list(a), list(b))[1] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert paired_p([1.0, 2.0], [0.0, 1.0]) == (1.0, 0.0)          # constant non-zero difference
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_window_mean_takes_the_tail_and_falls_back_to_the_last_value():
    rows = [{"step": s, "x": float(s)} for s in range(10)] + [{"step": 3, "e": 7.0}]
    assert window_mean(rows, "x", 0.2) == pytest.approx(8.5)
    assert window_mean(rows, "e", 0.1) == 7.0           # no evaluation in the last 10%: the last one


def test_change_verdict():
    assert change_verdict([0.5] * 3, [0.6, 0.61, 0.62], "acc")["verdict"] == "improved"
    assert change_verdict([0.5] * 3, [0.4, 0.6, 0.55], "acc")["verdict"] == "no detectable change"
    assert change_verdict([0.5], [0.6], "acc")["verdict"] == "undetermined"


# ---------------------------------------------------------------- bands

def test_log_band_is_positive_and_is_the_exponentiated_t_interval():
    x = [0.01, 0.5, 3.0]
    assert mean_ci95(x)[0] - mean_ci95(x)[1] < 0          # the linear t-band crosses zero here
    gm, lo, hi = mean_ci95_log(x)
    m, h = mean_ci95(list(np.log(x)))
    assert (gm, lo, hi) == pytest.approx((math.exp(m), math.exp(m - h), math.exp(m + h)))
    assert 0 < lo < gm < hi
    assert math.isnan(mean_ci95_log([0.0, 1.0])[1])        # not a positive sample: no log band


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
    from opo_theory.lm.trainer import start_run

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
    prompts, tokens, rewards, shown, correct, extra = collect(t.cfg, t._rollout, t.vocab.pad_id)
    r = rewards.view(-1, t.cfg.group_size)
    assert len(prompts) == t.cfg.prompts_per_step and tokens.shape[0] == len(rewards)
    assert extra["sampling/informative_share"] == 1.0 and bool((r.max(1).values > r.min(1).values).all())
    assert shown.shape == correct.shape == (t.cfg.prompts_per_step * t.cfg.group_size,)
    capped = trainer(tmp_path / "c", micro + ["dynamic_sampling=true", "dynamic_sampling_rounds=1", "shaping=0.5"])
    p2, _, r2, s2, _, e2 = collect(capped.cfg, capped._rollout, capped.vocab.pad_id)
    assert e2["sampling/rounds"] == 1 and len(p2) == capped.cfg.prompts_per_step and torch.equal(r2.sort()[0], s2.sort()[0])


def test_overlong_penalty_enters_the_reward(tmp_path, micro):
    from opo_theory.lm.sampling import response_mask
    from opo_theory.objectives.shaping import overlong_penalty

    t = trainer(tmp_path, micro + ["overlong_buffer=6"])
    torch.manual_seed(0)
    _, tokens, rewards, correct = t._rollout()
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
    assert below["verdict"] == "below" and below["windows"]["0.2"]["ratio"] == pytest.approx(1.4, rel=0.05)
    near = fig7.ratio_verdict({"opo": [rows(1.2), rows(1.3), rows(1.25)], "grpo": [rows(0.25)] * 3},
                              "grad/response_efficiency")
    assert near["verdict"] == "consistent"
    assert fig7.ratio_verdict({"opo": [rows(1.0)]}, "grad/response_efficiency") is None


def test_fig5_late_improvement_needs_long_runs():
    fig5 = script("fig5-reward")
    short = {"opo": [[{"step": s, "reward/mean": 0.5} for s in range(100)]] * 3}
    assert fig5.after_late(short)["after_step_100"] is None
    rng = np.random.default_rng(0)
    grow = [[{"step": s, "reward/mean": 0.5 + 0.001 * s + rng.normal(0, 0.01)} for s in range(300)] for _ in range(3)]
    flat = [[{"step": s, "reward/mean": 0.6 + rng.normal(0, 0.01)} for s in range(300)] for _ in range(3)]
    late = fig5.after_late({"opo": grow, "grpo": flat})["after_step_100"]
    assert late["holds"] and late["change"]["opo"]["verdict"] == "improved"
    assert not fig5.after_late({"opo": flat, "grpo": grow})["after_step_100"]["holds"]
