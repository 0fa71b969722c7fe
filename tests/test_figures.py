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
    import re

    import matplotlib.pyplot as plt

    from opo_theory.figures.runs import RUNS_DIR, describe_setup, load, metric_range, plot_metric
    from opo_theory.io import REPO_ROOT

    runs = load(RUNS_DIR)
    script = (REPO_ROOT / "paper_repro" / "regen_runs.sh").read_text()      # what `make runs` trains
    main = re.search(r'^MAIN="([^"]+)"', script, re.M)[1]
    seeds = int(re.search(r"^SEEDS=\$\{SEEDS:-(\d+)\}", script, re.M)[1])
    assert set(runs) == set(main.split(","))
    assert all(len(s) == seeds and all(len(rows) == 100 for rows in s) for s in runs.values())
    config = json.loads((RUNS_DIR / "opo" / "seed0" / "config.json").read_text())["config"]
    assert f"train level {config['train_level']}, OOD = held-out level {config['ood_level']}" in describe_setup(RUNS_DIR)
    assert metric_range("val/ood_accuracy") == (0.0, 1.0) and metric_range("grad/norm")[0] == 0.0
    assert metric_range("delta/m3") is None
    fig, ax = plt.subplots()
    data = plot_metric(ax, runs, "val/ood_accuracy", "ood", clip=metric_range("val/ood_accuracy"))
    plt.close(fig)
    assert all(0.0 <= v <= 1.0 for d in data.values() for v in d["low"] + d["high"])


def _banded_panel(spike: float, log: bool = True):
    """A panel with two lines in [1, 10] and their bands, one band reaching ``spike`` at x = 30."""
    from opo_theory.figures.style import new_figure

    fig, axes = new_figure()
    ax = axes[0, 0]
    x = np.arange(100.0)
    for centre in (2.0, 8.0):
        y = centre + 0.2 * np.sin(x)
        hi = y * 1.5
        if centre == 8.0:
            hi[30] = spike
        ax.plot(x, y)
        ax.fill_between(x, y / 1.5, hi)
    if log:
        ax.set_yscale("log")
    return fig, ax


@pytest.mark.parametrize("log", [True, False])
def test_clip_outlying_bands_cuts_one_spike_and_marks_it(log):
    import matplotlib.pyplot as plt

    from opo_theory.figures.style import clip_outlying_bands

    fig, ax = _banded_panel(1000.0, log)
    cut = clip_outlying_bands(ax)
    assert cut == [{"x": 30.0, "value": 1000.0, "side": "high"}]
    low, high = ax.get_ylim()
    assert 12.0 < high < 100.0 and low < 2.0 / 1.5 + 0.1          # every line and the other band points still shown
    assert [t.get_text() for t in ax.texts] == ["band to 1e+03 (cut)"]
    plt.close(fig)


def test_clip_outlying_bands_leaves_ordinary_bands_alone():
    import matplotlib.pyplot as plt

    from opo_theory.figures.style import clip_outlying_bands

    fig, ax = _banded_panel(14.0)                           # within a factor 3 of the other band ends
    before = ax.get_ylim()
    assert clip_outlying_bands(ax) == [] and ax.get_ylim() == before and not ax.texts
    plt.close(fig)


def test_legends_over_data_names_the_covered_panel_only():
    import matplotlib.pyplot as plt

    from opo_theory.figures.style import legend_outside, legends_over_data, new_figure

    fig, axes = new_figure(2, 1)
    x = np.linspace(0, 1, 50)
    for ax, title in zip(axes[0], ("covered", "clear"), strict=True):
        ax.plot(x, x, label="a")
        ax.plot(x, 1 - x, label="b")
        ax.set_title(title)
    axes[0, 0].legend(loc="center")                          # on the crossing of the two lines
    legend_outside(axes[0, 1])
    assert legends_over_data(fig) == ["covered"]
    plt.close(fig)


def test_text_color_and_wrap_title():
    import matplotlib.pyplot as plt

    from opo_theory.figures.style import new_figure, text_color, wrap_title

    assert text_color("#fde725") == "k" and text_color("#440154") == "w"    # viridis' ends: yellow, dark purple
    fig, _ = new_figure(width=3.0)
    text = "word " * 200
    lines = wrap_title(text, fig).splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= 48 and " ".join(lines).split() == text.split()
    plt.close(fig)


REDRAWN = ("grid-alpha-mu", "repro-chipo-bandit", "repro-likelihood-displacement")    # slow runs: draw() from JSON


@pytest.mark.parametrize("name", REDRAWN)
def test_slow_artifacts_redraw_from_their_committed_json_with_legends_clear(name, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from opo_theory.figures import style
    from opo_theory.io import REPO_ROOT

    record = json.loads((REPO_ROOT / "figures" / f"{name}.json").read_text())
    kept = []
    monkeypatch.setattr(style.plt, "close", kept.append)          # save_figure closes it: keep it to inspect
    with style.writing_to(tmp_path):
        catalogue.load_artifact(name).draw(record["data"], record["config"])
    monkeypatch.undo()
    assert json.loads((tmp_path / f"{name}.json").read_text())["data"] == record["data"]
    fig, = kept
    assert style.legends_over_data(fig) == []
    title = fig._suptitle                                          # matplotlib has no public getter for the Text
    assert title is not None and title.get_window_extent().width <= fig.get_window_extent().width
    plt.close(fig)


# Machado, Oliveira & Fernandes (2009) full-severity simulation matrices, applied to linear RGB
CVD = {"normal": np.eye(3),
       "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                                 [-0.011820, 0.042940, 0.968881]]),
       "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                               [-0.003882, -0.048116, 1.051998]])}


def _lab(linear) -> np.ndarray:
    """CIELAB (D65) of a linear-RGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = (lambda t: np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116))(xyz / np.array([0.95047, 1.0, 1.08883]))
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", sorted(CVD))
def test_the_lm_comparisons_ten_objectives_stay_apart_under_colour_blindness(vision):
    from itertools import combinations

    from opo_theory.figures.style import colors, linear_rgb

    names = ["opo", "opo-released", "gopo", "grpo", "dapo", "gspo", "dr-grpo", "dapo-paper", "dapo-released",
             "gspo-released"]
    palette = colors(names)
    lab = {n: _lab(np.clip(CVD[vision] @ np.array(linear_rgb(c)), 0, 1)) for n, c in palette.items()}
    distance, a, b = min((float(np.linalg.norm(lab[a] - lab[b])), a, b) for a, b in combinations(names, 2))
    assert distance > 15, f"{a} and {b} are {distance:.1f} CIELAB units apart under {vision}"   # old tab10: 4.6


def test_fig5_pairs_each_objective_with_opo_seed_by_seed():
    fig5 = catalogue.load_artifact("fig5-reward")
    key = "reward/mean"
    runs = {"opo": [[{"step": 0, key: 0.5}, {"step": 1, key: 0.6}], [{"step": 0, key: 0.1}, {"step": 1, key: None}]],
            "grpo": [[{"step": 0, key: 0.25}, {"step": 1, key: 0.7}], [{"step": 0, key: 0.4}, {"step": 1, key: 0.9}]]}
    diff = fig5.paired_difference(runs, key)
    assert list(diff) == ["grpo"]
    assert diff["grpo"][0] == [{"step": 0, key: -0.25}, {"step": 1, key: pytest.approx(0.1)}]
    assert diff["grpo"][1] == [{"step": 0, key: pytest.approx(0.3)}]          # a step OPO did not log is left out
