"""A researcher's first hour: figures that are never silently empty, claims/bandit/objectives output a
newcomer can read, `--id a b`, "did you mean" on a misspelled key, one name per variant in audit and compare."""

from __future__ import annotations

import json

import pytest
from conftest import AUDIT_SETTINGS, micro_settings

from opo_theory.cli import main

# ---------------------------------------------------------------- item 1: no silently empty figure

@pytest.fixture(scope="module")
def short_compare(tmp_path_factory, micro):
    """A 3-step compare: shorter than the figures' 5-step moving average."""
    out = tmp_path_factory.mktemp("short") / "cmp"
    assert main(["compare", "--objectives", "opo,grpo", "--seeds", "2", "--steps", "3", "--out", str(out), "--quiet",
                 "--set", *micro]) == 0
    return out


def test_short_runs_shorten_the_moving_average_instead_of_drawing_nothing(short_compare, capsys):
    capsys.readouterr()
    assert main(["figures", "fig5-reward", "fig8-entropy", "--runs", str(short_compare)]) == 0
    err = capsys.readouterr().err
    figures = short_compare / "figures"
    assert f"figures: 2 of 2 artifact(s) drawn in full into {figures}" in err
    for name, key in (("fig5-reward", "reward/mean"), ("fig8-entropy", "entropy/mean")):
        data = json.loads((figures / f"{name}.json").read_text())["data"][key]
        assert set(data) == {"opo", "grpo"}
        for curve in data.values():
            assert curve["smooth"] == 2 and curve["step"] == [1, 2]        # 3 steps: a 2-step average, 2 points
    rewards = [[json.loads(x)["reward/mean"] for x in (short_compare / "grpo" / f"seed{k}" / "metrics.jsonl").open()]
               for k in (0, 1)]
    moving = [[(r[0] + r[1]) / 2, (r[1] + r[2]) / 2] for r in rewards]
    grpo = json.loads((figures / "fig5-reward.json").read_text())["data"]["reward/mean"]["grpo"]
    assert grpo["mean"] == pytest.approx([(a + b) / 2 for a, b in zip(*moving)], abs=1e-12)


def test_a_panel_without_data_is_counted_in_the_summary_line(short_compare, capsys, monkeypatch):
    from opo_theory.figures import runs

    real = runs.load
    monkeypatch.setattr(runs, "load", lambda d: {n: [[{k: v for k, v in r.items() if k != "entropy/mean"}
                                                      for r in rows] for rows in s] for n, s in real(d).items()})
    capsys.readouterr()
    assert main(["figures", "fig8-entropy", "--runs", str(short_compare), "--out", str(short_compare / "f2")]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"figures: 0 of 1 artifact(s) drawn in full into {short_compare / 'f2'}; 1 with panels "
                           "that show no data")
    assert "fig8-entropy (1 of 1 panel(s): mean token entropy (5-step average))" in last


def test_empty_panels_ignores_reference_lines_and_switched_off_axes():
    from opo_theory.figures.style import empty_panels, new_figure

    fig, axes = new_figure(3, 1)
    axes[0, 0].plot([0, 1], [1, 2])
    axes[0, 0].axhline(1.0)
    axes[0, 1].axhline(1.0)                       # a reference line alone is no data
    axes[0, 1].set_title("(b) nothing")
    axes[0, 2].axis("off")
    assert empty_panels(fig) == ["(b) nothing"]


# ---------------------------------------------------------------- item 8: what a newcomer reads first

def test_claims_id_takes_several_ids_and_prints_what_each_claim_states(capsys):
    from opo_theory.claims.index import get_claim

    assert main(["claims", "--id", "tv-bound", "conservation"]) == 0
    out = capsys.readouterr().out
    assert "(2 claims)" in out
    for claim in ("tv-bound", "conservation"):
        first_words = " ".join(get_claim(claim).statement.split()[:3])
        assert f"states: {first_words}" in " ".join(out.split())
    assert main(["claims", "--id", "tv-bound", "--id", "conservation", "--json"]) == 0     # repeated still works
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["tv-bound", "conservation"]


@pytest.mark.parametrize("typo, meant", [("learning_rate", "lr"), ("stepz", "steps"), ("max_new_tokens", "max_new")])
def test_a_misspelled_setting_gets_a_suggestion(capsys, tmp_path, typo, meant):
    assert main(["train", "--objective", "opo", "--out", str(tmp_path / "r"), "--set", f"{typo}=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"unknown setting '{typo}' for train (did you mean {meant}?)" in err
    assert not (tmp_path / "r").exists()


def test_no_suggestion_when_nothing_is_close():
    from opo_theory.settings import did_you_mean

    assert did_you_mean("zzzz", {"lr": 1, "steps": 2}) == ""


@pytest.mark.parametrize("name", ["opo", "opo-exact", "gopo", "gopo-bounded"])
def test_every_opo_family_hyperparameter_says_what_it_means(name):
    from opo_theory.objectives.describe import hyperparameter_rows

    rows = {key: meaning for key, _, _, meaning in hyperparameter_rows(name)}
    assert all(rows.values()), [k for k, v in rows.items() if not v]
    assert "batch" in rows["center"] and "group" in rows["center"]


def test_every_hyperparameter_of_every_objective_says_what_it_means():
    """Each field of each registered objective's config has help (a subclass that only changes a default, like
    DAPO's eps_high, inherits its base's), and a text field's help names its default among its choices."""
    from opo_theory.objectives.describe import hyperparameter_rows
    from opo_theory.objectives.registry import available

    blank = [(n, k) for n in available() for k, _, _, meaning in hyperparameter_rows(n) if not meaning.strip()]
    assert not blank
    unlisted = [(n, k) for n in available() for k, default, kind, meaning in hyperparameter_rows(n)
                if kind == "str" and str(default) not in meaning]
    assert not unlisted
    rows = {k: (v, meaning) for k, v, _, meaning in hyperparameter_rows("dapo")}
    assert rows["eps_high"] == (0.28, "ratio clipped above at 1 + eps_high where A > 0")


def test_objectives_name_prints_the_meaning_of_each_key(capsys):
    assert main(["objectives", "ppo-kl"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("kl "))
    assert "k3" in row and "k1" in row and "abs" in row


def test_bandit_output_explains_its_columns_and_reports_progress(capsys):
    assert main(["bandit", "kl-vs-chi2", "--set", "arms=4"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "reading the output:" in out
    for key in ("kl_max_ratio", "chi2_bounded_zero_frac", "kl_log_ratio_slope"):
        assert f"  {key}: " in out.split("reading the output:")[1]
    assert "bandit kl-vs-chi2: running with arms=4" in captured.err and "bandit kl-vs-chi2: done in" in captured.err


def test_bandit_legend_says_what_none_means_in_drop_p():
    from opo_theory.bandit.cli import LEGEND, legend

    text = legend("saturation", {"drop_p": {"fixed-anchor": {"sft": {"logit": 0.9995, "delta": None}}}})
    assert "drop_p: " in text and "None: it never drops below that" in text
    assert set(LEGEND) == {"saturation", "dynamics", "grid", "approx", "positivity", "kl-vs-chi2"}


@pytest.mark.parametrize("value, shown", [(1 - 1e-9, "0.999999999"), (0.999992596857, "0.99999"), (1.0, "1"),
                                          (0.64213, "0.6421"), (-3115.3, "-3115"), (1e-12, "1e-12")])
def test_bandit_cells_never_round_a_probability_onto_one(value, shown):
    from opo_theory.bandit.cli import fmt

    assert fmt(value) == shown


# ---------------------------------------------------------------- item 7: audit output, one name per variant

def test_audit_prints_its_verdict_table_read_from_its_json(tmp_path, sft_cache, capsys):
    out = tmp_path / "audit"
    assert main(["audit", "--out", str(out), "--seeds", "2", "--updates", "1", "--objectives", "opo-released,grpo",
                 "--quiet", "--set", *micro_settings(*AUDIT_SETTINGS, cache=sft_cache)]) == 0
    printed = capsys.readouterr().out
    verdict = json.loads((out / "audit.json").read_text())["verdict"]
    assert f"mechanism verdict: {verdict['overall']} " in printed
    for condition, c in verdict["conditions"].items():           # one row per condition, with its outcome
        row = next(line for line in printed.splitlines() if line.strip().startswith(condition))
        p_holm = c["pairs"]["grpo"]["p_holm"]
        assert c["outcome"] in row and ("n/a" if p_holm is None else f"{p_holm:.2g}") in row
    assert f"clip-zeroed token share, baselines minus OPO: {verdict['clip_zero']['verdict']}" in printed


def test_opo_code_and_opo_released_mean_the_same_in_audit_and_compare():
    from opo_theory.lm.experiments.audit import AUDIT_OBJECTIVES, audit_entry, check_objectives
    from opo_theory.lm.experiments.compare import parse_variant

    for label in ("opo-code", "opo-released"):
        variant = parse_variant(label)                            # compare accepts both names
        name, overrides = audit_entry(label)
        assert variant.label == label and variant.objective == name == "opo"
        assert sorted(variant.settings) == sorted(f"objective.{k}={v}" for k, v in overrides.items())
        assert check_objectives([label]) == [label]              # and the audit too
    assert audit_entry("opo-code")[1] == {"geometry": "code"}
    assert audit_entry("opo-released")[1] == {"geometry": "code", "seq_logratio": "mean", "delta_clamp": 5,
                                              "normalization": "released", "alpha": 0.75, "mu": 0.5}
    assert "opo-released" not in AUDIT_OBJECTIVES       # the default audit (and its committed record) is unchanged


def test_audit_table_says_when_there_is_no_verdict():
    from opo_theory.lm.audit_cli import verdict_table

    record = {"rollout_accuracy": {"mean": 0.25, "low": 0.1, "high": 0.4, "n": 2},
              "policy": {"policy": "sft", "sft_val_accuracy": 0.3}, "verdict": None}
    lines = verdict_table(record).splitlines()
    assert lines[0] == "policy sft (SFT val accuracy 0.3); rollout accuracy 0.25 [0.1, 0.4] over 2 seeds"
    assert lines[1].startswith("no mechanism verdict: it needs an OPO variant and grpo or dapo")


def test_claims_show_progress_on_a_terminal_only(capsys, monkeypatch):
    import sys

    assert main(["claims", "--id", "tv-bound", "conservation"]) == 0
    assert "checking" not in capsys.readouterr().err            # piped or captured: no progress noise
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["claims", "--id", "tv-bound", "conservation"]) == 0
    err = capsys.readouterr().err
    assert "checking 1/2: tv-bound" in err and "checking 2/2: conservation" in err and err.endswith("\n")


# ---------------------------------------------------------------- item 4: progress on long work

GRID_QUICK = ["inner_sweep=5,50", "seeds=2", "arms=4", "outer=3", "n_boot=5"]


def test_bandit_grid_says_which_of_its_runs_it_is_on(capsys):
    assert main(["bandit", "grid", "--set", *GRID_QUICK]) == 0
    err = capsys.readouterr().err.splitlines()
    runs = [line for line in err if line.startswith("bandit grid (opo): run ")]
    assert runs == ["bandit grid (opo): run 1 of 2: 3 outer iterations x 5 inner steps on 18 rows (alpha x mu x seeds)",
                    "bandit grid (opo): run 2 of 2: 3 outer iterations x 50 inner steps on 18 rows (alpha x mu x seeds)"]
    assert err[0].startswith("bandit grid: running with") and err[-1].startswith("bandit grid: done in ")


def test_the_grid_is_silent_outside_reporting(capsys):
    from opo_theory.bandit.experiments import grid
    from opo_theory.bandit.progress import reporting

    quiet = grid(inner_sweep=(5,), seeds=2, arms=4, outer=3, n_boot=5)
    assert capsys.readouterr().err == ""
    with reporting():
        loud = grid(inner_sweep=(5,), seeds=2, arms=4, outer=3, n_boot=5)
    assert capsys.readouterr().err.count("bandit grid (opo): run ") == 1
    assert quiet["final_reward"] == loud["final_reward"]          # reporting changes nothing computed


def test_figures_name_each_figure_and_its_time_and_on_a_terminal_say_which_one_is_drawing(tmp_path, capsys,
                                                                                        monkeypatch):
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["figures", "fig1-geometry", "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "[1/1] fig1-geometry: drawing ..." in captured.err
    line = next(x for x in captured.out.splitlines() if x.startswith("[1/1] fig1-geometry: "))
    assert line.endswith(" s)") and "fig1-geometry.png" in line


def test_the_tiny_random_model_says_a_reward_of_zero_is_expected(tmp_path, capsys):
    pytest.importorskip("transformers")
    from opo_theory.lm.models.tiny_hf import main as tiny_main

    assert tiny_main([str(tmp_path / "tiny"), "--layers", "1", "--width", "16", "--heads", "2"]) == 0
    out = capsys.readouterr().out
    assert f"train it with --model hf:{tmp_path / 'tiny'}" in out and "a reward and accuracy of 0 are expected" in out
