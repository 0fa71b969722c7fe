"""Atomic file output and run provenance: nothing a run writes is half-written if interrupted."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from opo_theory.validation import show

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


TEMPORARY = r"\.{name}\.[a-z0-9_]{{8}}\.tmp"   # what tempfile.mkstemp names write_bytes_atomic's temporaries


def remove_stale_temporaries(directory: str | os.PathLike, *names: str) -> list[Path]:
    """Delete the temporaries ``write_bytes_atomic`` leaves behind when its process is killed mid-write, for
    the files ``names`` in ``directory`` only (``.<name>.XXXXXXXX.tmp``: never a file the toolkit did not
    name); returns what was removed. Call it only where no other process is writing the same files."""
    directory = Path(directory)
    stale = sorted(p for p in directory.iterdir() if is_temporary_of(p.name, names)) if directory.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def is_temporary_of(filename: str, names) -> bool:
    """True when ``filename`` is a temporary ``write_bytes_atomic`` made for one of ``names``."""
    return any(re.fullmatch(TEMPORARY.format(name=re.escape(name)), filename) for name in names)


def sha256_file(path: str | os.PathLike, size: int | None = None) -> str:
    """SHA-256 (hex) of a file's bytes, or of its first ``size`` bytes."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read() if size is None else fh.read(size)).hexdigest()


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


def read_jsonl(path: str | os.PathLike, counter: str | None = None) -> list[dict]:
    """The rows of a JSON-lines file; [] when it does not exist. A last line without its newline that is not
    a whole JSON value is left out (a process killed while appending); any other line that is not a JSON
    object is a ValueError naming the file and line. With ``counter`` (e.g. "step"), row i must hold
    ``counter = i``: a deleted, repeated or moved row is refused the same way."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    lines, last = lines[:-1], lines[-1]         # last: "" after a final newline, else an unfinished row
    rows = [parse_row(path, i, line) for i, line in enumerate(lines, 1)]
    if last:
        try:
            rows.append(parse_row(path, len(lines) + 1, last))
        except ValueError:
            pass                                # half-written by a killed process: not a row yet
    for i, row in enumerate(rows if counter else []):
        if row.get(counter) != i:
            raise ValueError(f"{path} line {i + 1}: expected {counter} {i}, found {show(row.get(counter))} "
                             f"(a row deleted, repeated or moved): the file is damaged")
    return rows


def parse_row(path: Path, number: int, line: str) -> dict:
    """One JSONL line as a dict; ValueError naming the file and line otherwise."""
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} line {number} is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}): "
                         "the file is damaged") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path} line {number} is not a JSON object: the file is damaged")
    return row


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """A JSON file's value; ValueError naming the file (and ``what`` it should hold) when missing or damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist{f' (expected {what})' if what else ''}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reason = getattr(exc, "msg", None) or getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"{path} is not readable JSON ({reason}): the file is damaged") from None


def cache_dir(path: str | Path) -> Path:
    """A cache directory setting as a path: a relative one is taken from the repository root when the package
    runs from a clone (so a run started in another folder finds the same cache), else from the current folder."""
    path = Path(path)
    if path.is_absolute() or not (REPO_ROOT / "pyproject.toml").is_file():
        return path
    return REPO_ROOT / path


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it (for portable provenance), else as given."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


GENERATED = ("figures", "REPORT.md")     # artifacts the toolkit writes: a change there is output, not code


def git_revision(root: Path = REPO_ROOT) -> str:
    """Current commit hash, with '-dirty' when a tracked file outside the generated artifacts (GENERATED) has
    changes (a regeneration replacing committed runs or figures leaves it clean), or 'unknown' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){g}" for g in GENERATED)], cwd=root,
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
        **{name: installed_version(name) for name in ARTIFACT_LIBRARIES},
        "platform": platform.platform(),
    }


# libraries besides torch and numpy whose version can change a committed artifact's bytes: sympy (derivations),
# scipy (statistics, root-finding), matplotlib and fontTools (the PDFs: fontTools 4.69 keeps every font name
# record when it subsets, 4.68 kept 7), transformers (hf models)
ARTIFACT_LIBRARIES = ("sympy", "scipy", "matplotlib", "fonttools", "transformers")


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (None when it is not installed); reads metadata, imports nothing."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
