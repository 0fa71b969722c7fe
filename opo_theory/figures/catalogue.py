"""The artifact catalogue: every ``paper_repro/<name>.py`` script is one figure or table.

A script defines ``main(rerun: bool = False) -> list[pathlib.Path]`` and a module docstring whose
first line describes the artifact. ``rerun`` recomputes LM runs instead of reading committed logs.
Scripts write through opo_theory.figures.style (``out_dir()``); a script that reads other artifacts'
outputs lists them in ``REQUIRES``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from opo_theory.figures.style import writing_to
from opo_theory.io import REPO_ROOT

SCRIPTS_DIR = REPO_ROOT / "paper_repro"
REPORT = "report"


def artifact_names() -> list[str]:
    """Names of all artifacts (script stems), in order."""
    if not SCRIPTS_DIR.is_dir():
        raise ValueError(f"paper_repro/ not found at {SCRIPTS_DIR}; install the package editable "
                         "from a clone (make setup)")
    names = (p.stem for p in SCRIPTS_DIR.glob("*.py") if not p.stem.startswith("_"))
    return sorted(names, key=lambda n: (n == REPORT, n))     # the report reads every other artifact


def load_artifact(name: str) -> ModuleType:
    """Import the script for ``name`` (ValueError listing the allowed names otherwise)."""
    names = artifact_names()
    if name not in names:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(names)}")
    path = SCRIPTS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location("paper_repro_" + name.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(name: str) -> str:
    """First docstring line of the artifact's script."""
    doc = (load_artifact(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def requires(name: str) -> tuple[str, ...]:
    """The artifacts whose outputs ``name`` reads (its script's ``REQUIRES``)."""
    return tuple(getattr(load_artifact(name), "REQUIRES", ()))


def build(name: str, rerun: bool = False, out: Path | None = None) -> list[Path]:
    """Run the artifact's script, writing to ``out`` (None: figures/); returns the files it wrote."""
    with writing_to(out):
        return list(load_artifact(name).main(rerun=rerun))
