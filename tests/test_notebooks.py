"""Every notebook runs top to bottom in a fresh kernel (small settings via OPO_NOTEBOOK_SMALL=1), notebook 04
also on a single `train` run directory; the committed notebooks are their build scripts' cells with outputs
and no volatile metadata (notebooks/build/make.py writes them)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
spec = importlib.util.spec_from_file_location("notebooks_make", ROOT / "notebooks" / "build" / "make.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)


def errors(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]
    assert sorted(f"{k}-" for k in make.sources()) == sorted(p.name[:3] for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path):
    nb = make.execute(nbformat.read(path, as_version=4), small=True)
    assert not errors(nb), errors(nb)


def test_notebook_04_reads_a_single_train_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ROOT / "figures" / "runs" / "cpu-tiny" / "opo" / "seed0", run,
                    ignore=shutil.ignore_patterns("checkpoint.pt"))           # what `train --out` leaves
    nb = make.execute(nbformat.read(ROOT / "notebooks" / "04-lm-diagnostics.ipynb", as_version=4), small=True,
                      env={"OPO_RUNS_DIR": str(run)})
    assert not errors(nb), errors(nb)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "one `train` run: opo seed 0, preset cpu-tiny" in text and "computed from metrics.jsonl" in text


@pytest.mark.parametrize("key", sorted(make.sources()))
def test_committed_notebook_is_its_build_with_outputs(key):
    """The committed file holds exactly the build script's cells, executed (every code cell has run, none
    failed), with no execution timestamps or kernel metadata: `make notebooks` rewrites it."""
    name, cells = make.load_cells(make.sources()[key])
    committed = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    built = make.build(name, cells)
    hint = f"{name} is stale: run `make notebooks` (python notebooks/build/make.py {key})"
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells], hint
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), hint
    assert not errors(committed)
    assert committed.metadata == make.normalize(built).metadata
    assert not any("execution" in c.metadata for c in committed.cells)
    raw = json.loads((ROOT / "notebooks" / name).read_text())
    assert "small mode: True" not in json.dumps(raw), f"{name} was executed in small mode"
