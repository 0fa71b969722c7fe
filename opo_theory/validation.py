"""Boundary checks shared by every module: each raises ValueError naming the value and what is allowed."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path


def _is_number(value: object) -> bool:
    """A finite int or float (not a bool); ints of any size count as finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def require_positive(name: str, value: float) -> float:
    """Require a finite ``value > 0``."""
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {show(value)}")
    return value


def require_nonnegative(name: str, value: float) -> float:
    """Require a finite ``value >= 0``."""
    if not _is_number(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {show(value)}")
    return value


def require_in_range(name: str, value: float, low: float, high: float,
                     *, low_open: bool = False, high_open: bool = False) -> float:
    """Require ``low <= value <= high`` (each end optionally open)."""
    ok = _is_number(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        lb = "(" if low_open else "["
        rb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{rb}, got {show(value)}")
    return value


def require_choice(name: str, value: str, allowed: Iterable[str]) -> str:
    """Require ``value`` to be one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {show(value)}; allowed: {', '.join(map(str, allowed))}")
    return value


def show(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages (hostile inputs can be huge)."""
    try:
        text = repr(value)
    except ValueError:                      # an int too long to print (sys.get_int_max_str_digits)
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def require_int(name: str, value: int, low: int, high: int | None = None) -> int:
    """Require an integer (not a bool) with ``low <= value <= high`` (``high`` None: no upper limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {show(value)}")
    return value


def require_items(name: str, values, check: Callable[[str, object], object], max_len: int = 1000) -> tuple:
    """Require a non-empty sequence of at most ``max_len`` items, each passing ``check(name, item)``."""
    if not isinstance(values, (tuple, list)) or not 1 <= len(values) <= max_len:
        raise ValueError(f"{name} must be a list of 1 to {max_len} values, got {show(values)}")
    for v in values:
        check(name, v)
    return tuple(values)


def require_size(what: str, size: int, limit: int) -> int:
    """Require ``size`` (e.g. a product of dimensions that sets the memory used) to be at most ``limit``."""
    if size > limit:
        raise ValueError(f"{what} = {size:.3g} exceeds the limit {limit:.0e} (memory/time); choose smaller values")
    return size


def require_output_dir(name: str, path: str | os.PathLike) -> Path:
    """Require a directory that exists or can be created, and that can be written to.

    The check creates whatever is missing, writes a probe file and removes both again, so a failed
    command never leaves a directory behind; ValueError names the path and the reason."""
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{name} must be a non-empty path")
    p = Path(text)
    if os.path.lexists(p) and not os.path.isdir(p):
        raise ValueError(f"{name} {show(text)} exists and is not a directory")
    missing = []
    q = p if p.is_absolute() else Path.cwd() / p      # not normalized: 'file/../x' must fail as the OS would
    while not os.path.lexists(q):
        missing.append(q)
        q = q.parent
    if not os.path.isdir(q):
        raise ValueError(f"{name} {show(text)} lies under {show(str(q))}, which is not a directory")
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".opo-write-probe-", dir=q if not missing else missing[0])
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{name} {show(text)} cannot be created or written: {exc.strerror or exc}") from None
    finally:
        for d in reversed(created):
            d.rmdir()
    return p


def require_output_file(name: str, path: str | os.PathLike) -> Path:
    """Require a file path that is not a directory and whose directory exists or can be created and written."""
    text = os.fspath(path)
    if not text:
        raise ValueError(f"{name} must be a non-empty path")
    if os.path.isdir(text) or text.endswith(os.sep):
        raise ValueError(f"{name} {show(text)} is a directory; expected a file path")
    p = Path(text)
    require_output_dir(f"the directory of {name}", p.parent)
    if len(p.name.encode(errors="surrogateescape")) > 255:
        raise ValueError(f"{name} {show(text)} has a file name longer than 255 bytes")
    return p
