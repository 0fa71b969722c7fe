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
    dumps_json,
    provenance,
    write_bytes_atomic,
    write_json_atomic,
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


# For variants (labels outside OBJECTIVE_COLORS): dark tab20b/tab20c shades, none of them in the palette above.
EXTRA_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")


def colors(names: list[str]) -> dict[str, str]:
    """One distinct colour per name: the palette's for registered objectives, the next unused EXTRA_COLORS
    shade (in order) for the others, so a figure never draws two lines in one colour."""
    out = {n: OBJECTIVE_COLORS[n] for n in names if n in OBJECTIVE_COLORS}
    spare = iter(c for c in EXTRA_COLORS if c not in out.values())
    for n in names:
        if n not in out:
            out[n] = next(spare, "#555555")
    return out


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    """A figure in the shared style with ``nrows x ncols`` panels."""
    plt.rcParams.update(STYLE)
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


# Figures saved with panels that show no data, since the last take_empty_panels():
# {artifact name: (names of its empty panels, number of its visible panels)}.
_EMPTY_PANELS: dict[str, tuple[list[str], int]] = {}


def visible_panels(fig) -> list:
    """The panels of ``fig`` drawn with axes (a panel switched off with axis('off') is not one)."""
    return [ax for ax in fig.axes if ax.axison and ax.get_visible()]


def empty_panels(fig) -> list[str]:
    """The visible panels of ``fig`` that show no data (data limits not finite in x and y: reference lines
    such as axhline do not count), each named by its title, else its y label, else its position."""
    import numpy as np

    return [ax.get_title() or ax.get_ylabel() or f"panel {i + 1}" for i, ax in enumerate(visible_panels(fig))
            if not np.isfinite(ax.dataLim.get_points()).all()]


def take_empty_panels() -> dict[str, tuple[list[str], int]]:
    """{artifact: (its empty panels, its visible panels)} for the figures saved since the last call."""
    out = dict(_EMPTY_PANELS)
    _EMPTY_PANELS.clear()
    return out


def legend_outside(ax, **kw) -> None:
    """The panel's legend to the right of its axes, where it cannot cover data (for panels with many lines)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw)


def objective_legend(ax, palette: dict[str, str], **kw) -> None:
    """One entry per objective (its colour) to the right of ``ax``: for figures whose panels share the colours
    and explain their line styles in their titles."""
    from matplotlib.lines import Line2D

    legend_outside(ax, handles=[Line2D([], [], color=c, label=n) for n, c in palette.items()], **kw)


def save_figure(fig, name: str, data: dict[str, Any], config: dict[str, Any]) -> list[Path]:
    """Write ``<name>.png``, ``.pdf`` and ``.json`` (plotted numbers, config, provenance) to ``out_dir()``;
    panels without data are recorded for take_empty_panels (the figures command reports them)."""
    if empty := empty_panels(fig):
        _EMPTY_PANELS[name] = (empty, len(visible_panels(fig)))
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(write_if_changed(out_dir() / f"{name}.{ext}", buf.getvalue()))
    plt.close(fig)
    paths.append(save_data(name, data, config))
    return paths


def save_data(name: str, data: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write ``<name>.json`` (strict JSON) with the numbers, the config that produced them and provenance."""
    record = {"name": name, "config": config, "data": data, "provenance": provenance()}
    path = out_dir() / f"{name}.json"
    if path.exists() and same_but_provenance(path, record):
        return path
    return write_json_atomic(path, record)


def write_if_changed(path: Path, data: bytes) -> Path:
    """Write ``data`` atomically unless ``path`` already holds exactly these bytes (a rebuild with unchanged
    content leaves the file, and a git checkout, untouched)."""
    if path.exists() and path.read_bytes() == data:
        return path
    return write_bytes_atomic(path, data)


def same_but_provenance(path: Path, record: dict) -> bool:
    """True when the JSON at ``path`` equals ``record`` in everything but its provenance: the numbers did not
    change, so the file keeps the provenance of the revision that last changed them."""
    import json

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    new = json.loads(dumps_json(record))
    old.pop("provenance", None)
    new.pop("provenance", None)
    return old == new


def save_table(name: str, header: list[str], rows: list[list[str]], note: str, data: dict[str, Any],
               config: dict[str, Any]) -> list[Path]:
    """Write ``<name>.md`` (a markdown table and a note) and ``<name>.json`` (the numbers) to ``out_dir()``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    md = write_if_changed(out_dir() / f"{name}.md", ("\n".join(lines) + f"\n\n{note}\n").encode())
    return [md, save_data(name, data, config)]
