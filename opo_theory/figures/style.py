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
from cycler import cycler  # noqa: E402  (matplotlib's own dependency)

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

# One colour per objective, shared by every figure so a method looks the same everywhere. Built on the Okabe-Ito
# palette (its hues stay apart under the common colour-vision deficiencies: OPO vermillion vs DAPO bluish green
# vs GRPO blue), with Paul Tol's muted colours and navy (DPO: Tol's purple sat 8 CIELAB units from GRPO under
# protanopia) for the objectives beyond its seven.
OBJECTIVE_COLORS = {
    "opo": "#d55e00", "opo-exact": "#f4a582", "gopo": "#cc79a7", "gopo-bounded": "#e7b9d4",
    "grpo": "#0072b2", "dr-grpo": "#56b4e9", "dapo": "#009e73", "gspo": "#e69f00",
    "ppo-kl": "#882255", "dpo": "#000080", "ipo": "#7f7f7f", "chipo": "#999933", "sft": "#000000",
}
# The default colour cycle (lines drawn without an objective's colour): Okabe-Ito, yellow last (faint on white).
CYCLE = ("#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#000000", "#f0e442")

STYLE = {
    "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9, "axes.titlesize": 10,
    "axes.labelsize": 9, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.6,
    "savefig.bbox": "tight", "pdf.fonttype": 42, "axes.prop_cycle": cycler(color=list(CYCLE)),
}


def color(name: str) -> str:
    """Colour of an objective (grey for names outside the palette)."""
    return OBJECTIVE_COLORS.get(name, "#555555")


# For variants (labels outside OBJECTIVE_COLORS, e.g. opo-released, dapo-paper): Paul Tol's dark and muted
# colours, none of them in the palette above; dark first, so the first variants stand out from their base.
EXTRA_COLORS = ("#332288", "#117733", "#661100", "#ddcc77", "#44aa99", "#cc6677", "#6699cc", "#225555")


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


def text_color(rgba) -> str:
    """Black or white, whichever reads on a background of colour ``rgba``: black when its relative luminance
    0.2126 R + 0.7152 G + 0.0722 B (sRGB decoded to linear light) exceeds 0.179, the contrast-ratio crossover."""
    r, g, b = linear_rgb(rgba)
    return "k" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "w"


def linear_rgb(rgba) -> tuple[float, float, float]:
    """A colour's sRGB channels decoded to linear light: c / 12.92 up to 0.04045, ((c + 0.055) / 1.055)^2.4 above."""
    from matplotlib.colors import to_rgb

    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(rgba))
    return r, g, b


def wrap_title(text: str, fig, chars_per_inch: float = 16.0) -> str:
    """``text`` broken into lines no wider than ``fig`` (about ``chars_per_inch`` characters of 8-9 pt type per
    inch), so a long suptitle neither runs off the figure nor widens it."""
    import textwrap

    width = max(20, int(fig.get_figwidth() * chars_per_inch))
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def clip_outlying_bands(ax, quantile: float = 0.98, factor: float = 3.0) -> list[dict]:
    """Y limits that show every line but not a band's rare outlying end (one seed's spike that squashes the
    panel): a band point is outlying when it lies beyond the ``1 - quantile`` / ``quantile`` quantile of all band
    points (and beyond every line) by more than ``factor`` (log axes) or (factor - 1) x that quantile range
    (linear). The limits hold everything else; each band's farthest cut end is marked at the limit with a
    triangle and its value (one mark per place). Returns the cut ends ({"x", "value", "side"}); limits unchanged when none."""
    import numpy as np
    from matplotlib.collections import PolyCollection

    log = ax.get_yscale() == "log"
    ok = (lambda y: np.isfinite(y) & (y > 0)) if log else np.isfinite
    scale = np.log10 if log else (lambda y: y)
    lines = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()] or [np.array([])])
    lines = scale(lines[ok(lines)])
    bands = [p.vertices[ok(p.vertices[:, 1])] for c in ax.collections if isinstance(c, PolyCollection)
             for p in c.get_paths()]
    pts = np.concatenate(bands) if bands else np.empty((0, 2))
    if not len(lines) or not len(pts):
        return []
    ys = scale(pts[:, 1])
    low = min(lines.min(), np.quantile(ys, 1 - quantile))
    high = max(lines.max(), np.quantile(ys, quantile))
    reach = np.log10(factor) if log else (factor - 1) * max(high - low, 1e-12)
    far = {"high": high + reach, "low": low - reach}
    cut = []
    for band in bands:
        b = scale(band[:, 1])
        for side, out in (("high", b > far["high"]), ("low", b < far["low"])):
            if out.any():
                i = np.flatnonzero(out)[np.argmax(b[out]) if side == "high" else np.argmin(b[out])]
                cut.append({"x": float(band[i, 0]), "value": float(band[i, 1]), "side": side})
    if not cut:
        return []
    kept = np.concatenate([lines, ys[(ys <= far["high"]) & (ys >= far["low"])]])
    lo, hi = kept.min(), kept.max()
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    ax.set_ylim(10 ** lo if log else lo, 10 ** hi if log else hi)
    span = np.ptp(pts[:, 0]) or 1.0
    marked: list[dict] = []
    for c in sorted(cut, key=lambda c: -c["value"] if c["side"] == "high" else c["value"]):    # one mark per place: the farthest end
        if any(m["side"] == c["side"] and abs(m["x"] - c["x"]) < 0.05 * span for m in marked):
            continue
        marked.append(c)
        at = 1.0 if c["side"] == "high" else 0.0
        ax.plot([c["x"]], [at], marker="^" if at else "v", color="0.3", ms=5, clip_on=False,
                transform=ax.get_xaxis_transform(), label="_nolegend_")
        ax.annotate(f"band to {c['value']:.3g} (cut)", (c["x"], at), xycoords=ax.get_xaxis_transform(),
                    xytext=(5, -3 if at else 3), textcoords="offset points", fontsize=6, color="0.3",
                    va="top" if at else "bottom")
    return cut


def legends_over_data(fig) -> list[str]:
    """The panels of ``fig`` with a line vertex or scatter point under a legend (its own, another panel's or
    the figure's), each named as in empty_panels; [] when every legend sits where no data is."""
    import numpy as np
    from matplotlib.collections import PathCollection

    fig.canvas.draw()                                                   # legend boxes are placed at draw time
    boxes = [ax.get_legend().get_window_extent() for ax in fig.axes if ax.get_legend() is not None]
    boxes += [lg.get_window_extent() for lg in fig.legends]
    out = []
    for i, ax in enumerate(visible_panels(fig)):
        pts = [line.get_transform().transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
               for line in ax.get_lines() if line.get_visible() and len(line.get_xdata())]
        pts += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                if isinstance(c, PathCollection)]
        pts = np.concatenate(pts) if pts else np.empty((0, 2))
        pts = pts[np.isfinite(pts).all(axis=1)]
        inside = ax.get_window_extent()
        pts = pts[(pts[:, 0] >= inside.x0) & (pts[:, 0] <= inside.x1) & (pts[:, 1] >= inside.y0) & (pts[:, 1] <= inside.y1)]
        if any(((pts[:, 0] >= b.x0) & (pts[:, 0] <= b.x1) & (pts[:, 1] >= b.y0) & (pts[:, 1] <= b.y1)).any()
               for b in boxes):
            out.append(ax.get_title() or ax.get_ylabel() or f"panel {i + 1}")
    return out


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
