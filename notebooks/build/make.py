"""Build the notebooks from their cell lists (build_0N.py), execute each in a fresh kernel and write them
WITH their outputs, deterministically: a fixed environment (hash seed, one BLAS thread, Agg backend), no
execution timestamps, kernel-independent metadata, so rerunning on unchanged code gives identical bytes.

    python notebooks/build/make.py             # all four, full settings (what is committed; `make notebooks`)
    python notebooks/build/make.py 02 04       # some of them
    python notebooks/build/make.py --small     # OPO_NOTEBOOK_SMALL=1 (the test suite's quick settings)
    python notebooks/build/make.py --no-execute  # sources only, no outputs
    python notebooks/build/make.py --check     # exit 1 when a committed notebook differs from a fresh build

Environment the notebooks read (documented in README and each notebook's first cell): OPO_NOTEBOOK_SMALL=1
(quick settings), OPO_RUNS_DIR (notebook 04: a `train` run directory or a `compare` directory; default the
committed figures/runs/cpu-tiny).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
sys.path.insert(0, str(HERE))
from _nb import build  # noqa: E402

# The kernel's environment: fixed so outputs do not depend on the machine or on set/dict hashing.
FIXED_ENV = {"PYTHONHASHSEED": "0", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "TZ": "UTC", "LC_ALL": "C.UTF-8", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
TIMEOUT_S = 600


def sources() -> dict[str, Path]:
    """{'01': notebooks/build/build_01.py, ...}."""
    return {p.stem.removeprefix("build_"): p for p in sorted(HERE.glob("build_*.py"))}


def load_cells(path: Path) -> tuple[str, list]:
    """(notebook file name, cells) of one build script (its NAME and ``cells``)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NAME, module.cells


def execute(nb, small: bool, env: dict[str, str] | None = None):
    """Run ``nb`` top to bottom in a fresh python3 kernel started in notebooks/ (errors raise)."""
    import nbclient

    kernel_env = {**os.environ, **FIXED_ENV, **(env or {})}
    kernel_env.pop("OPO_NOTEBOOK_SMALL", None)
    if small:
        kernel_env["OPO_NOTEBOOK_SMALL"] = "1"
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=kernel_env)
    return nb


def normalize(nb):
    """Drop what changes from one execution to the next: kernel-filled language_info, execution metadata,
    widget state; outputs keep their order and content."""
    nb.metadata = nbformat.from_dict({"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"},
                                      "language_info": {"name": "python"}})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("collapsed", None)
        cell.metadata.pop("scrolled", None)
        for out in cell.get("outputs", []):
            out.get("metadata", {}).pop("execution", None)
    return nb


def make(key: str, small: bool = False, run: bool = True, env: dict[str, str] | None = None) -> tuple[str, str]:
    """(file name, text) of notebook ``key`` built from its script, executed unless ``run`` is False."""
    name, cells = load_cells(sources()[key])
    nb = build(name, cells)
    if run:
        execute(nb, small, env)
    nbformat.validate(nb)
    return name, nbformat.writes(normalize(nb)) + "\n"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("keys", nargs="*", metavar="NN", help=f"notebooks to build (default: all of {', '.join(sources())})")
    p.add_argument("--small", action="store_true", help="OPO_NOTEBOOK_SMALL=1 (quick settings)")
    p.add_argument("--no-execute", action="store_true", help="write the sources without outputs")
    p.add_argument("--check", action="store_true", help="build and compare with the committed files; write nothing")
    args = p.parse_args(argv)
    unknown = [k for k in args.keys if k not in sources()]
    if unknown:
        p.error(f"unknown notebook {', '.join(unknown)}; allowed: {', '.join(sources())}")
    stale = []
    for key in args.keys or list(sources()):
        start = time.perf_counter()
        print(f"{key}: building" + ("" if args.no_execute else " and executing every cell in a fresh kernel (measured "
                                    "durations: README, Notebooks)"), file=sys.stderr, flush=True)
        try:
            name, text = make(key, small=args.small, run=not args.no_execute)
        except Exception as exc:            # nbclient's CellExecutionError: the failing cell and its traceback
            if type(exc).__name__ != "CellExecutionError":
                raise
            print(f"{key}: a cell failed; nothing written for it\n{exc}", file=sys.stderr)
            return 2
        path = NOTEBOOKS / name
        took = time.perf_counter() - start
        if args.check:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            stale += [] if same else [name]
            print(f"{name}: {'up to date' if same else 'DIFFERS from a fresh build'} ({took:.1f} s)", flush=True)
        else:
            write_atomic(path, text)
            print(f"wrote {path.relative_to(NOTEBOOKS.parent)} ({took:.1f} s)", flush=True)
    if stale:
        print(f"rebuild with: python notebooks/build/make.py {' '.join(n[:2] for n in stale)}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
