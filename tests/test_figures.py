"""Figure catalogue and the computed geometry behind Fig 1; the report is built last."""

import json

import numpy as np
import pytest

from opo_theory.cli import main
from opo_theory.figures import catalogue
from opo_theory.settings import parse_overrides

ISSUE_ARTIFACTS = {"fig1-geometry", "fig4-saturation", "fig5-reward", "fig6-gradnorm", "fig7-saturation",
                   "fig8-entropy", "fig9-ood", "grid-alpha-mu", "approx-delta3", "drive-vs-reg", "table1",
                   "table2", "claims-table", "bandit-dynamics", "audit-confidence", "audit-trust-region", "report",
                   "field-losses",
                   "repro-ipo-bandit", "repro-sparse-regularization", "repro-chipo-bandit",
                   "repro-likelihood-displacement"}


def test_catalogue_lists_every_artifact_with_the_report_last():
    names = catalogue.artifact_names()
    assert set(names) == ISSUE_ARTIFACTS and names[-1] == "report"
    for name in names:
        assert callable(catalogue.load_artifact(name).main) and catalogue.describe(name)


def test_unknown_figure_is_a_clear_error(capsys):
    assert main(["figures", "fig99"]) == 2
    assert "unknown figure 'fig99'; allowed: approx-delta3" in capsys.readouterr().err


def test_fig1_geometry_is_the_orthogonal_projection():
    mod = catalogue.load_artifact("fig1-geometry")
    pi_k = np.array([0.5, 0.3, 0.2])
    geo = mod.projection_geometry(pi_k, np.array([1.5, -0.3, -1.2]), 0.3, 2.0)
    assert abs(pi_k @ geo["v_star"]) < 1e-12                       # v* in H_0
    assert np.allclose(geo["u_star"] - geo["v_star"], geo["lambda_star"] / 2.0)   # drop along 1
    assert abs(geo["lambda_star"] - pi_k @ geo["w_tilde"]) < 1e-12


def test_set_overrides_are_typed_and_checked():
    got = parse_overrides(["a=3", "b=0.5,1", "c=true"], {"a": 1, "b": (0.1,), "c": False}, "x")
    assert got == {"a": 3, "b": (0.5, 1.0), "c": True}
    with pytest.raises(ValueError, match="bad value 'x' for a of x"):
        parse_overrides(["a=x"], {"a": 1}, "x")
    with pytest.raises(ValueError, match="--set expects key=value"):
        parse_overrides(["a"], {"a": 1}, "x")


def test_committed_lm_logs_load_describe_their_setup_and_plot_within_range():
    import matplotlib.pyplot as plt

    from opo_theory.figures.runs import RUNS_DIR, describe_setup, load, metric_range, plot_metric

    runs = load(RUNS_DIR)
    # what paper_repro/regen_runs.sh trains (MAIN_A + MAIN_B)
    assert set(runs) == {"opo", "opo-released", "gopo", "grpo", "dapo", "gspo", "dr-grpo", "dapo-paper"}
    assert all(len(seeds) == 3 and all(len(rows) == 100 for rows in seeds) for seeds in runs.values())
    config = json.loads((RUNS_DIR / "opo" / "seed0" / "config.json").read_text())["config"]
    assert f"train level {config['train_level']}, OOD = held-out level {config['ood_level']}" in describe_setup(RUNS_DIR)
    assert metric_range("val/ood_accuracy") == (0.0, 1.0) and metric_range("grad/norm")[0] == 0.0
    assert metric_range("delta/m3") is None
    fig, ax = plt.subplots()
    data = plot_metric(ax, runs, "val/ood_accuracy", "ood", clip=metric_range("val/ood_accuracy"))
    plt.close(fig)
    assert all(0.0 <= v <= 1.0 for d in data.values() for v in d["low"] + d["high"])
