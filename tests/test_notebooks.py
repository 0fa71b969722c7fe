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


def test_notebook_04_takes_a_relative_runs_dir_from_the_repository_root():
    """The README's `OPO_RUNS_DIR=runs/...` form: relative to the repository, not to notebooks/ where the kernel runs."""
    nb = make.execute(nbformat.read(ROOT / "notebooks" / "04-lm-diagnostics.ipynb", as_version=4), small=True,
                      env={"OPO_RUNS_DIR": "figures/runs/cpu-tiny-scarce"})
    assert not errors(nb), errors(nb)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "run dir: figures/runs/cpu-tiny-scarce" in text


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


# ---------------------------------------------------------------- prose that follows the outputs

def verdict_words() -> list[str]:
    """Every verdict word of the claims and of the statistics (longest first: 'not supported' before 'supported')."""
    from opo_theory.claims.verdict import VERDICTS as CLAIM_VERDICTS
    from opo_theory.stats import VERDICTS as STAT_VERDICTS

    return sorted(set(CLAIM_VERDICTS) | set(STAT_VERDICTS), key=len, reverse=True)


def claim_ids() -> list[str]:
    from opo_theory.claims.index import catalogue

    return list(catalogue())


def segments(text: str) -> list[str]:
    """Paragraphs and bullet items of a markdown text."""
    import re

    return [s for s in re.split(r"\n\s*\n|\n(?=\s*(?:[*-]|\d+\.) )", text) if s.strip()]


def prose_claim_verdicts(text: str) -> list[tuple[str, str]]:
    """(claim or 'the claim', verdict word) for each paragraph or bullet that states a verdict of a claim."""
    import re

    found = []
    for seg in segments(text):
        named = [i for i in claim_ids() if f"`{i}`" in seg] or (["the claim"] if re.search(r"\bclaim\b", seg, re.I)
                                                               else [])
        words = [w for w in verdict_words() if re.search(rf"\b{w}\b", seg, re.I)]
        found += [(c, w) for c in named for w in words]
    return found


def output_text(cell) -> str:
    return "".join(o.get("text", "") + "".join(v for k, v in o.get("data", {}).items() if k.startswith("text/")
                                                and isinstance(v, str)) for o in cell.get("outputs", []))


def shown_verdicts(nb) -> dict[str, set[str]]:
    """{claim id: verdicts the notebook's outputs give it}: claims-table rows, '[verdict] id (' lines and
    computed prose '`id` is **verdict**'."""
    import re

    ids = "|".join(re.escape(i) for i in claim_ids())
    words = "|".join(verdict_words())
    patterns = [rf"<code>({ids})</code></td><td>[^<]*</td><td><b>({words})</b>", rf"\[({words})\] ({ids}) \(",
                rf"`({ids})` is \*\*({words})\*\*"]
    shown: dict[str, set[str]] = {}
    for cell in nb.cells:
        text = output_text(cell)
        for k, pattern in enumerate(patterns):
            for m in re.finditer(pattern, text):
                claim, verdict = (m.group(2), m.group(1)) if k == 1 else (m.group(1), m.group(2))
                shown.setdefault(claim, set()).add(verdict)
    return shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_prose_writes_no_verdict_by_hand(path):
    """A markdown cell never gives a claim a verdict: verdicts in the text are printed by code cells from the
    data, so the words follow the outputs whatever the checks conclude."""
    nb = nbformat.read(path, as_version=4)
    stated = [(c, w) for cell in nb.cells if cell.cell_type == "markdown" for c, w in prose_claim_verdicts(cell.source)]
    assert not stated, f"{path.name}: markdown states verdicts {stated}; print them from the results instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_text_and_outputs_agree_on_each_claims_verdict(path):
    """Every verdict the notebook shows for a claim (table, lists, computed prose) is the same verdict."""
    disagree = {c: v for c, v in shown_verdicts(nbformat.read(path, as_version=4)).items() if len(v) > 1}
    assert not disagree, f"{path.name}: one claim, several verdicts: {disagree}"


def test_the_verdict_checks_catch_a_contradiction():
    """The two checks above fail on the contradiction a reader found in notebook 01: prose calling a claim
    refuted beside a table that says conditional."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    table = new_code_cell("", outputs=[new_output("display_data", data={
        "text/html": "<tr><td><code>log-ratio-error</code></td><td>Lemma A.1</td><td><b>conditional</b></td>"})])
    prose = new_markdown_cell("* `log-ratio-error` is **refuted** in its loss part.")
    computed = new_code_cell("", outputs=[new_output("display_data", data={
        "text/markdown": "`log-ratio-error` is **refuted**"})])
    assert prose_claim_verdicts(prose.source) == [("log-ratio-error", "refuted")]
    assert shown_verdicts(new_notebook(cells=[table, computed])) == {"log-ratio-error": {"conditional", "refuted"}}
    assert prose_claim_verdicts("Bottom line: the claim is *refuted*.") == [("the claim", "refuted")]
