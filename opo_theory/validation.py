"""Boundary checks shared by every module: each raises ValueError naming the value and what is allowed."""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    try:
        require_output_dir(f"the directory of {name}", p.parent)
    except ValueError as exc:
        raise ValueError(f"{name} {show(text)}: {exc}") from None
    if len(p.name.encode(errors="surrogateescape")) > 255:
        raise ValueError(f"{name} {show(text)} has a file name longer than 255 bytes")
    return p


# ---------------------------------------------------------------- ranges as data
# A range object checks a value (``check(name, value)``, ValueError as above) and prints itself for
# ``--list-settings``; config fields carry one in their metadata, so the check and its text share one source.

@dataclass(frozen=True)
class IntRange:
    """An integer (not a bool) in [low, high]; high None: no upper limit."""

    low: int
    high: int | None = None

    def check(self, name: str, value) -> None:
        require_int(name, value, self.low, self.high)

    def __str__(self) -> str:
        return f"integer >= {self.low}" if self.high is None else f"integer in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Interval:
    """A finite number in the interval from low to high (high may be inf), each end optionally open."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def check(self, name: str, value) -> None:
        if self.high == math.inf and self.low == 0:
            (require_positive if self.low_open else require_nonnegative)(name, value)
        else:
            require_in_range(name, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open)

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class OneOf:
    """One of ``values`` (a sequence, or a function returning one, read when checked)."""

    values: Any

    def allowed(self) -> list:
        return list(self.values() if callable(self.values) else self.values)

    def check(self, name: str, value) -> None:
        require_choice(name, value, self.allowed())

    def __str__(self) -> str:
        return "one of " + ", ".join(map(str, self.allowed()))


@dataclass(frozen=True)
class Flag:
    """true or false (a bool, not 0/1)."""

    def check(self, name: str, value) -> None:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {show(value)}")

    def __str__(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Matches:
    """A string matching ``pattern`` (fullmatch); ``text`` says what is allowed."""

    pattern: str
    text: str

    def check(self, name: str, value) -> None:
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise ValueError(f"unknown {name} {show(value)}; allowed: {self.text}")

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Checked:
    """Whatever ``fn(value)`` accepts (it raises ValueError otherwise); ``text`` says what that is."""

    fn: Callable[[Any], Any]
    text: str

    def check(self, name: str, value) -> None:
        self.fn(value)

    def __str__(self) -> str:
        return self.text
