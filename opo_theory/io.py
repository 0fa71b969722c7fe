"""Atomic file output and run provenance: nothing a run writes is half-written if interrupted."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)          # mkstemp creates 0600; outputs are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_stale_temporaries(directory: str | os.PathLike, name: str = "") -> list[Path]:
    """Delete the temporary files ``write_bytes_atomic`` leaves behind when its process is killed mid-write
    (``.<name>*.tmp`` in ``directory``; every such file when ``name`` is empty); returns what was removed.
    Call it only where no other process is writing the same files."""
    directory = Path(directory)
    stale = sorted(directory.glob(f".{name}*.tmp")) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON (RFC 8259: non-finite numbers written as null) with sorted keys, indented."""
    return write_text_atomic(path, dumps_json(obj, indent=2, sort_keys=True) + "\n")


def to_strict_json(obj: Any) -> Any:
    """``obj`` as plain JSON values: nan/inf become None, numpy/torch scalars and arrays become numbers
    and lists, tuples become lists. Other objects with ``__float__`` (sympy numbers) become floats."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: to_strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict_json(v) for v in obj]
    if hasattr(obj, "tolist"):              # numpy / torch arrays and scalars
        return to_strict_json(obj.tolist())
    if hasattr(obj, "item"):
        return to_strict_json(obj.item())
    if hasattr(obj, "__float__"):
        return to_strict_json(float(obj))
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``to_strict_json(obj)``: never NaN/Infinity, so every JSON reader accepts it."""
    return json.dumps(to_strict_json(obj), allow_nan=False, **kwargs)


def json_line(obj: Any) -> str:
    """One JSONL row (strict JSON, ending in a newline): ``log.write(json_line(row))``."""
    return dumps_json(obj) + "\n"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The rows of a JSON-lines file up to the first line that is not a whole JSON value (a process killed
    while appending can leave one half-written line at the end); [] when the file does not exist."""
    rows = []
    path = Path(path)
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for portable provenance), else as given."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def git_revision(root: Path = REPO_ROOT) -> str:
    """Current commit hash (with '-dirty' when the tree has changes), or 'unknown' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict[str, str]:
    """Package and library versions plus git revision, stored next to every run's outputs."""
    import numpy
    import torch

    from opo_theory import __version__

    return {
        "opo_theory": __version__,
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
