"""`figures --audit DIR` draws a user's own `audit --out DIR` (default DIR/figures, never the committed figures):
the audit figures that fit its objectives, a summary line counting what was drawn, one-line refusals otherwise."""

from __future__ import annotations

import json
import shutil

import pytest

from opo_theory.cli import main
from opo_theory.figures.style import FIGURES_DIR
from opo_theory.io import sha256_file

AUDIT_MICRO = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=30", "pool_size=300", "val_size=20",
               "train_level=2", "ood_level=3", "sft_batch=32", "shaping=0.5", "prompts_per_step=4", "group_size=4",
               "max_new=5", "lr=0.01"]
DRAWN = ("audit-confidence", "audit-trust-region", "field-losses")


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-audit")
    assert main(["audit", "--out", str(root / "audit"), "--seeds", "2", "--updates", "2", "--objectives",
                 "opo-released,grpo", "--quiet", "--set", *AUDIT_MICRO, f"sft_cache={root / 'sft'}"]) == 0
    return root / "audit"


def committed():
    return {p.name: sha256_file(p) for name in DRAWN for p in FIGURES_DIR.glob(f"{name}.*")}


def test_figures_draws_a_users_audit_into_its_own_folder(audit_dir, capsys):
    before = committed()
    capsys.readouterr()
    assert main(["figures", "--audit", str(audit_dir)]) == 0
    captured = capsys.readouterr()
    out = audit_dir / "figures"
    assert f"figures: {len(DRAWN)} artifact(s) into {out}, audit read from {audit_dir}" in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("figures: ") and f" of {len(DRAWN)} artifact(s) drawn in full into {out}" in last
    for name in DRAWN:
        assert f"] {name}: " in captured.out and (out / f"{name}.png").is_file()
    record = json.loads((audit_dir / "audit.json").read_text())
    drawn = json.loads((out / "audit-confidence.json").read_text())
    assert drawn["config"]["audit"] == str(audit_dir.resolve())
    assert set(drawn["data"]["summary"]) == set(record["summary"]) == {"opo-released", "grpo"}
    assert drawn["data"]["summary"] == record["summary"]
    field = json.loads((out / "field-losses.json").read_text())["data"]["audit"]
    assert set(field["per_bin_pos_last"]) == {"opo-released", "grpo"}
    assert committed() == before                                  # the committed figures are untouched


def test_an_audit_without_grpo_skips_the_figure_that_compares_with_it(audit_dir, tmp_path, capsys):
    mine = tmp_path / "opo-only"
    mine.mkdir()
    record = json.loads((audit_dir / "audit.json").read_text())
    record["summary"] = {k: v for k, v in record["summary"].items() if k != "grpo"}
    record["verdict"] = None                      # what `audit --objectives opo-released` writes: no baseline
    (mine / "audit.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["figures", "--audit", str(mine), "--out", str(tmp_path / "f")]) == 0
    err = capsys.readouterr().err
    assert f"figures: field-losses skipped: it compares with grpo, which {mine} did not audit (it holds " \
           "opo-released)" in err
    assert err.strip().splitlines()[-1].startswith("figures: ") and " of 2 artifact(s) drawn" in err
    assert not (tmp_path / "f" / "field-losses.png").exists() and (tmp_path / "f" / "audit-confidence.png").is_file()
    assert main(["figures", "field-losses", "--audit", str(mine)]) == 2
    assert "--audit: field-losses compares with grpo, which" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no audit output (no audit.json); produce one with `opo-theory audit --out"),
    ("compare", "holds a `compare` or `train` run, not an audit: draw it with --runs"),
    ("fig5", "--audit: fig5-reward do(es) not draw from an audit; with --audit name only audit-confidence, "
             "audit-trust-region, field-losses"),
    ("rerun", "--audit excludes --rerun"),
    ("damaged", "holds no per-objective audit summary: not written by `opo-theory audit`"),
])
def test_wrong_audit_arguments_are_refused_in_one_line(audit_dir, tmp_path, capsys, case, message):
    d = tmp_path / "d"
    d.mkdir()
    argv = ["figures", "--audit", str(d)]
    if case == "compare":
        (d / "summary.json").write_text("{}")
    elif case in ("fig5", "rerun"):
        shutil.copy(audit_dir / "audit.json", d / "audit.json")
        argv += ["fig5-reward"] if case == "fig5" else ["--rerun"]
    elif case == "damaged":
        (d / "audit.json").write_text('{"summary": {}}')
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (d / "figures").exists()
