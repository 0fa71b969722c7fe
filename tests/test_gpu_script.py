"""paper_repro/gpu_run.sh --tiny: the GPU session's plan end to end on the CPU at toy size, every result in
at most 8 strict-JSON / tar files in $OUT."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from opo_theory.stats import VERDICTS

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"log.txt", "smoke.json", "sft.json", "audit-start.json", "runs.tar.gz", "audit-end.json", "summary.json"}


def strict(path: Path):
    return json.loads(path.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_gpu_script_tiny_runs_the_whole_plan(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "paper_repro" / "gpu_run.sh"), "--tiny", "--work", str(tmp_path / "w")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == EXPECTED and len(EXPECTED) <= 8
    smoke = strict(out / "smoke.json")
    assert smoke["parallel"] in (1, 2) and smoke["env"]["torch"]
    assert all(v["steps_per_s_total"] > 0 for v in smoke["concurrency"].values())
    start = strict(out / "audit-start.json")["sft"]
    assert len(start["summary"]) == 9
    assert start["verdict"]["overall"] in VERDICTS
    summary = strict(out / "summary.json")
    assert set(summary["runs"]) == {f"{o}/seed0" for o in ("opo", "grpo", "dapo")}
    assert all(r["steps"] == 2 and r["tokens_per_s"] > 0 for r in summary["runs"].values())
    assert set(strict(out / "audit-end.json")) == {f"{o}/seed0" for o in ("opo", "grpo", "dapo")}
    with tarfile.open(out / "runs.tar.gz") as tar:
        metrics = [m for m in tar.getnames() if m.endswith("metrics.jsonl")]
        assert len(metrics) == 3
        rows = tar.extractfile(metrics[0]).read().decode().splitlines()
        assert len(rows) == 2 and "conf/ge0.999/share" in json.loads(rows[0])
    assert "[gpu-run] finished" in (out / "log.txt").read_text()
