"""Every script in examples/ runs as documented, and the committed example data is what its generator writes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from opo_theory.io import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def run(script: str, *args: str) -> str:
    """Run examples/SCRIPT as a user would (python examples/SCRIPT from the repository root); its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_example_script_is_tested():
    tested = {"objective_on_tensors.py", "trl_own_data.py", "make_sums.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_objective_on_tensors():
    out = run("objective_on_tensors.py")
    loss, norm = (float(x) for x in out.split("\n")[0].removeprefix("loss ").split("; gradient norm "))
    assert norm > 0 and math.isfinite(loss) and "loss/drive" in out


def test_trl_own_data(tmp_path):
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    out = run("trl_own_data.py", str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "mean reward per optimizer step" in out
    assert rows[0]["reward/std"] > 0 and rows[0]["grad/norm"] > 0          # the partial credit spreads rewards


def test_the_committed_sums_file_is_what_its_generator_writes(tmp_path):
    sys.path.insert(0, str(EXAMPLES))
    try:
        import make_sums
    finally:
        sys.path.remove(str(EXAMPLES))
    expected = "".join(json.dumps(row) + "\n" for row in make_sums.sums())
    assert (EXAMPLES / "data" / "sums.jsonl").read_text() == expected
    assert len(expected.splitlines()) == 200 and all(eval(r["prompt"][:-1]) == int(r["answer"])  # noqa: S307
                                                     for r in make_sums.sums())
