"""One look for every figure, and the one way figures are written (PNG + PDF + JSON, atomically)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from opo_theory.io import (  # noqa: E402
    REPO_ROOT,
    provenance,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

FIGURES_DIR = REPO_ROOT / "figures"       # the committed artifacts (and LM logs in runs/); default output
_OUT_DIR: ContextVar[Path] = ContextVar("figures_out_dir", default=FIGURES_DIR)


def out_dir() -> Path:
    """Where artifacts are written and read back (the report reads the others): FIGURES_DIR unless
    inside ``writing_to``."""
    return _OUT_DIR.get()


@contextmanager
def writing_to(directory: str | Path | None) -> Iterator[Path]:
    """Within the block, every artifact writes to ``directory`` (None: FIGURES_DIR)."""
    token = _OUT_DIR.set(Path(directory) if directory is not None else FIGURES_DIR)
    try:
        yield _OUT_DIR.get()
    finally:
        _OUT_DIR.reset(token)

# One colour per objective, shared by every figure so a method looks the same everywhere.
OBJECTIVE_COLORS = {
    "opo": "#d62728", "opo-exact": "#ff9896", "gopo": "#9467bd", "gopo-bounded": "#c5b0d5",
    "grpo": "#1f77b4", "dr-grpo": "#17becf", "dapo": "#2ca02c", "gspo": "#ff7f0e",
    "ppo-kl": "#8c564b", "dpo": "#e377c2", "ipo": "#7f7f7f", "chipo": "#bcbd22", "sft": "#000000",
}

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
    "axes.labelsize": 9, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.6,
    "savefig.bbox": "tight", "pdf.fonttype": 42,
}


def color(name: str) -> str:
    """Colour of an objective (grey for names outside the palette)."""
    return OBJECTIVE_COLORS.get(name, "#555555")


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    """A figure in the shared style with ``nrows x ncols`` panels."""
    plt.rcParams.update(STYLE)
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def save_figure(fig, name: str, data: dict[str, Any], config: dict[str, Any]) -> list[Path]:
    """Write ``<name>.png``, ``.pdf`` and ``.json`` (plotted numbers, config, provenance) to ``out_dir()``."""
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(write_bytes_atomic(out_dir() / f"{name}.{ext}", buf.getvalue()))
    plt.close(fig)
    paths.append(save_data(name, data, config))
    return paths


def save_data(name: str, data: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``<name>.json`` (strict JSON) with the numbers, the config that produced them and provenance."""
    record = {"name": name, "config": config, "data": data, "provenance": provenance()}
    return write_json_atomic(out_dir() / f"{name}.json", record)


def save_table(name: str, header: list[str], rows: list[list[str]], note: str, data: dict[str, Any],
               config: dict[str, Any]) -> list[Path]:
    """Write ``<name>.md`` (a markdown table and a note) and ``<name>.json`` (the numbers) to ``out_dir()``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    md = write_text_atomic(out_dir() / f"{name}.md", "\n".join(lines) + f"\n\n{note}\n")
    return [md, save_data(name, data, config)]
