"""The command line as a researcher drives it: cheap start-up, settings (--set forms, --list-settings,
--config, objectives), readable output, and one-line errors for the inputs that used to raise raw ones."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from opo_theory import __version__
from opo_theory.cli import COMMANDS, main

HEAVY = ("torch", "numpy", "scipy", "sympy", "matplotlib", "transformers")


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---------------------------------------------------------------- start-up

def test_building_each_parser_imports_nothing_heavy():
    """A fresh interpreter builds the top-level parser and every command's parser (except claims, whose
    package imports its catalogue) without loading torch, numpy, scipy, sympy or matplotlib."""
    commands = [c for c in COMMANDS if c != "claims"]
    code = ("import sys\nfrom opo_theory.cli import build_parser\n"
            f"build_parser([])\nfor c in {commands!r}:\n    build_parser([c])\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_claims_parser_does_not_import_torch():
    code = ("import sys\nfrom opo_theory.cli import build_parser\nbuild_parser(['claims'])\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_version_and_help(capsys):
    with pytest.raises(SystemExit):      # argparse's version action exits; main() turns that into rc 0
        from opo_theory.cli import build_parser
        build_parser([]).parse_args(["--version"])
    assert capsys.readouterr().out.strip() == f"opo-theory {__version__}"
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and all(c in out for c in COMMANDS)


def test_the_full_parser_lists_every_command_with_its_arguments(capsys):
    """build_parser() (no argv) configures every command: each sub-command's --help works."""
    for command in COMMANDS:
        rc, out, _ = run_cli(capsys, command, "--help")
        assert rc == 0 and out.startswith("usage: opo-theory " + command)


# ---------------------------------------------------------------- settings

def test_set_takes_several_pairs_and_repeats(capsys):
    rc, out, _ = run_cli(capsys, "bandit", "kl-vs-chi2", "--set", "arms=3", "scales=1,2", "--set", "mu=2", "--json")
    assert rc == 0
    assert json.loads(out)["config"] | {} == {"arms": 3, "scales": [1.0, 2.0], "beta": 1.0, "mu": 2.0, "seed": 0}


@pytest.mark.parametrize("experiment", ["approx", "dynamics", "grid", "kl-vs-chi2", "positivity", "saturation"])
def test_list_settings_output_parses_back_to_the_defaults(capsys, experiment):
    from opo_theory.bandit.experiments import EXPERIMENTS
    from opo_theory.settings import function_defaults, parse_value

    rc, out, _ = run_cli(capsys, "bandit", experiment, "--list-settings")
    defaults = function_defaults(EXPERIMENTS[experiment])
    lines = [line.split(" = ", 1) for line in out.splitlines() if " = " in line]
    assert rc == 0 and {k for k, _ in lines} == set(defaults) - {"objectives"}
    for key, text in lines:
        assert parse_value(text, defaults[key]) == defaults[key], key


def test_list_values_in_bracketed_forms():
    from opo_theory.settings import parse_value

    for text in ("(0.5, 1.0)", "[0.5, 1.0]", "0.5,1.0", " 0.5 , 1.0 "):
        assert parse_value(text, (0.3,)) == (0.5, 1.0)
    with pytest.raises(ValueError):
        parse_value("(0.5, x)", (0.3,))


def test_experiment_names_match_the_experiments():
    from opo_theory.bandit.cli import EXPERIMENT_NAMES
    from opo_theory.bandit.experiments import EXPERIMENTS

    assert set(EXPERIMENT_NAMES) == set(EXPERIMENTS)


def test_train_list_settings_prints_each_field_from_its_metadata(capsys):
    from opo_theory.lm.training.config import settable_fields

    rc, out, _ = run_cli(capsys, "train", "--objective", "opo", "--list-settings")
    assert rc == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("#")}
    for f in settable_fields():
        assert str(f.metadata["range"]) in rows[f.name] and f.metadata["help"] in rows[f.name], f.name
    assert "objective.mu" in rows and "objective.alpha" in rows
    # the preset's value is shown, with the field default beside it
    assert rows["train_level"].split()[1:4] == ["2", "(default", "3)"]


def test_field_metadata_drives_validation():
    """Every TrainConfig range in the metadata is enforced: one past an integer limit is refused, naming the field."""
    from opo_theory.lm.training.config import make_config, settable_fields
    from opo_theory.validation import IntRange

    for f in settable_fields():
        r = f.metadata["range"]
        if isinstance(r, IntRange):
            bad = r.low - 1 if r.high is None or r.low > 0 else r.high + 1
            with pytest.raises(ValueError, match=f.name):
                make_config("opo", "cpu-tiny", 0, [f"{f.name}={bad}"])


def test_config_file_is_overridden_by_set(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text('steps = 7\nlr = 0.002\napprox_grad = false\n[objective]\nmu = 2.0\n')
    rc, out, _ = run_cli(capsys, "train", "--objective", "opo", "--config", str(cfg), "--set", "steps=9",
                         "--list-settings")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line and not line.startswith("#")}
    assert rc == 0 and (rows["steps"], rows["lr"], rows["approx_grad"], rows["objective.mu"]) == ("9", "0.002", "false", "2.0")
    cfg.write_text("steps = 1.5\n")
    rc, _, err = run_cli(capsys, "train", "--objective", "opo", "--config", str(cfg), "--list-settings")
    assert rc == 2 and "steps" in err and len(err.splitlines()) == 1
    cfg.write_text("steps = \n")
    rc, _, err = run_cli(capsys, "train", "--objective", "opo", "--config", str(cfg), "--list-settings")
    assert rc == 2 and "not valid TOML" in err


def test_objectives_command_lists_the_registry(capsys):
    from opo_theory.objectives import available, get

    rc, out, _ = run_cli(capsys, "objectives")
    assert rc == 0 and all(f"{name} " in out and get(name).summary in out for name in available())
    rc, out, _ = run_cli(capsys, "objectives", "opo")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}
    assert rc == 0 and "eq 19" in out and rows["alpha"] == "0.4" and rows["mu"] == "1.0"
    rc, _, err = run_cli(capsys, "objectives", "nope")
    assert rc == 2 and "unknown objective 'nope'" in err


def test_bandit_objectives_and_their_hyperparameters(capsys):
    base = ["bandit", "dynamics", "--set", "arms=3", "seeds=2", "steps=4", "--json"]
    runs = {}
    for key, extra in {"inline": ["--objectives", "grpo, opo(alpha=0.9)"],
                       "set": ["--objectives", "grpo,opo", "--set", "objective.opo.alpha=0.9"],
                       "default": ["--objectives", "grpo,opo"]}.items():
        rc, out, err = run_cli(capsys, *base, *extra)
        assert rc == 0, err
        runs[key] = json.loads(out)
    assert list(runs["inline"]["summary"]) == ["grpo", "opo(alpha=0.9)"]
    assert runs["inline"]["config"]["objectives"]["opo(alpha=0.9)"] == {"alpha": 0.9}
    s = {k: r["summary"]["opo" if k != "inline" else "opo(alpha=0.9)"] for k, r in runs.items()}
    assert s["inline"] == s["set"] != s["default"]       # the hyperparameter reached the run, both ways
    assert runs["set"]["summary"]["grpo"] == runs["default"]["summary"]["grpo"]
    rc, _, err = run_cli(capsys, *base, "--objectives", "grpo", "--set", "objective.opo.mu=2")
    assert rc == 2 and "objective.opo.mu=2" in err


# ---------------------------------------------------------------- output people read

def test_bandit_json_leaves_curves_behind_a_flag(capsys):
    argv = ["bandit", "dynamics", "--set", "arms=3", "seeds=2", "steps=20", "--json"]
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0 and "curves" not in json.loads(out)
    rc, out, _ = run_cli(capsys, *argv, "--curves")
    curves = json.loads(out)["curves"]
    assert rc == 0 and len(curves["opo"]["regret"]) == 21       # the start and each of the 20 steps


def test_bandit_grid_prints_labelled_alpha_mu_tables(capsys):
    rc, out, _ = run_cli(capsys, "bandit", "grid", "--set", "alphas=0.3,0.9", "mus=0.5,1,2", "seeds=2", "arms=3",
                         "outer=2", "inner=2", "n_boot=2")
    lines = out.splitlines()
    i = lines.index("theory_rate (rows alpha, columns mu):")
    assert rc == 0 and lines[i + 1].split() == ["alpha", "\\", "mu", "0.5", "1", "2"]
    # |1 - eta mu| with eta = 0.4, the same in every alpha row
    assert lines[i + 3].split() == ["0.3", "0.8", "0.6", "0.2"] and lines[i + 4].split() == ["0.9", "0.8", "0.6", "0.2"]


@pytest.mark.parametrize("width", [80, 100])
def test_claims_table_has_a_header_and_fits_the_terminal(width):
    from opo_theory.claims.cli import table

    results = [SimpleNamespace(id="trust-region-duality", source="Feng et al. 2404.04626", verdict="conditional",
                               detail="word " * 60),
               SimpleNamespace(id="tv-bound", source="Prop A.3", verdict="verified", detail="short")]
    lines = table(results, width).splitlines()
    assert lines[0].split() == ["claim", "source", "verdict", "detail"]
    assert max(map(len, lines)) <= width
    assert "1 conditional, 1 verified (2 claims)" in lines[-1]


def test_claims_run_only_the_selected_claim(capsys):
    rc, out, _ = run_cli(capsys, "claims", "--id", "tv-bound")
    body = [line for line in out.splitlines()[2:] if line and not line.startswith(" ")]
    assert rc == 0 and out.startswith("claim") and body[0].startswith("tv-bound") and "(1 claims)" in out


# ---------------------------------------------------------------- raw errors, now one line

def one_line_error(capsys, *argv) -> str:
    rc, _, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("opo-theory: error: "), err
    return lines[0]


def test_hf_directory_without_tokenizer_files(tmp_path, capsys):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    line = one_line_error(capsys, "train", "--objective", "opo", "--model", f"hf:{model}", "--out", str(tmp_path / "r"))
    assert "holds no tokenizer files" in line and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv", [["train", "--objective", "opo"], ["compare"], ["figures", "table1"],
                                  ["bandit", "kl-vs-chi2"]])
def test_out_under_proc(argv, capsys):
    flag = ["--out", "/proc/version/x.json" if argv[0] == "bandit" else "/proc/version/x"]
    line = one_line_error(capsys, *argv, *flag)
    assert "/proc/version/x" in line


def test_objectives_with_spaces_are_stripped(monkeypatch, tmp_path, capsys):
    import opo_theory.lm.experiments.compare as compare

    seen = {}
    monkeypatch.setattr(compare, "compare", lambda objectives, *a, **k: seen.setdefault("o", objectives) and {})
    monkeypatch.setattr(compare, "markdown", lambda table: "")
    rc, _, err = run_cli(capsys, "compare", "--objectives", "opo, grpo ,", "--out", str(tmp_path / "c"))
    assert rc == 0 and seen["o"] == ["opo", "grpo"], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_gpu_preset_without_a_gpu_names_the_cpu_preset(tmp_path, capsys):
    line = one_line_error(capsys, "train", "--objective", "opo", "--preset", "gpu-small", "--out", str(tmp_path / "r"))
    assert "preset 'gpu-small' needs a GPU" in line and "--preset cpu-tiny" in line and "device=cpu" not in line
    line = one_line_error(capsys, "train", "--objective", "opo", "--set", "device=cuda", "--out", str(tmp_path / "r"))
    assert "use --set device=cpu" in line
    assert not (tmp_path / "r").exists()


def test_train_without_objective_or_out(capsys):
    assert "--objective" in one_line_error(capsys, "train", "--out", "x")
    assert "--out" in one_line_error(capsys, "train", "--objective", "opo")


def test_dataclass_fields_all_carry_metadata():
    """Every settable TrainConfig field has a range and a help line (the one source --list-settings reads)."""
    from opo_theory.lm.training.config import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f.name
