"""Build a notebook (without outputs) from a list of ("md" | "code", source) pairs; make.py executes it."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def build(name: str, cells: list[tuple[str, str]]):
    """The notebook ``name`` holding ``cells``, with deterministic cell ids and no outputs."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        nb.cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem[:2]}-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.validate(nb)
    return nb


def write(name: str, cells: list[tuple[str, str]]) -> Path:
    """Write the unexecuted notebook (``python notebooks/build/make.py NN`` also executes it)."""
    out = HERE.parent / name
    nbformat.write(build(name, cells), out)
    return out
