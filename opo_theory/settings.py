"""Parse `--set key=value` overrides against a function's or dataclass's defaults (typed, validated).

One text form per type, the one ``show_value`` prints (so ``--list-settings`` output can be pasted back):
true/false for bools, plain numbers and strings, comma lists for tuples (``0.3,0.6,0.9``; the
bracketed forms ``(0.3, 0.6)`` and ``[0.3, 0.6]`` are accepted too), None for an unset optional value.
A TOML ``--config`` file holds the same keys with TOML's own types (``settings_from_toml``).
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable
from typing import Any

from opo_theory.validation import show

MAX_TEXT = 200  # longest accepted value text: longer ones are hostile (int('1' * 5000) is slow or refused)


def _finite(x: Any) -> Any:
    """``x`` unless it is a non-finite float or a complex number."""
    if isinstance(x, complex) or (isinstance(x, float) and not math.isfinite(x)):
        raise ValueError("expected a finite number")
    return x


def parse_value(text: str, default: Any) -> Any:
    """Convert ``text`` to the type of ``default`` (tuples from comma lists; None-defaults literal-eval).

    Floats must be finite (nan and inf are refused everywhere); texts longer than MAX_TEXT are refused."""
    if len(text) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(default, tuple):
        kind = type(default[0]) if default else float
        inner = text.strip()
        if len(inner) >= 2 and (inner[0], inner[-1]) in (("(", ")"), ("[", "]")):
            inner = inner[1:-1]
        return tuple(_finite(kind(x)) for x in inner.split(",") if x.strip())
    if isinstance(default, (int, float, str)):
        return _finite(type(default)(text))
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    return _finite(value)


def parse_overrides(pairs: list[str] | None, defaults: dict[str, Any], what: str) -> dict[str, Any]:
    """['k=v', ...] -> {k: typed v}; unknown keys or unparsable values raise ValueError."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {show(pair)}")
        key, text = pair.split("=", 1)
        if key not in defaults:
            raise ValueError(f"unknown setting {show(key)} for {what}; allowed: {', '.join(sorted(defaults))}")
        try:
            out[key] = parse_value(text, defaults[key])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad value {show(text)} for {key} of {what}: {exc}") from None
    return out


def function_defaults(fn: Callable) -> dict[str, Any]:
    """Keyword defaults of ``fn``."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def flatten(groups: list[list[str]] | None) -> list[str]:
    """``--set a=1 b=2 --set c=3`` (argparse nargs='+' with action='append') -> ['a=1', 'b=2', 'c=3']."""
    return [pair for group in groups or [] for pair in group]


def show_value(value: Any) -> str:
    """The text form ``parse_value`` reads back: true/false, comma lists, numbers and strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(show_value(v) for v in value)
    return str(value)


def settings_from_toml(path: str) -> list[str]:
    """A TOML file's keys as ``key=value`` texts (tables nest as ``table.key``), to go before ``--set``'s.

    Values keep their TOML types up to the text form, so they are checked exactly as ``--set`` values are."""
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"--config {show(path)} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {show(path)} is not valid TOML: {exc}") from None

    def pairs(table: dict, prefix: str) -> list[str]:
        out = []
        for key, value in table.items():
            if isinstance(value, dict):
                out += pairs(value, f"{prefix}{key}.")
            elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list)) for v in value):
                raise ValueError(f"--config {show(path)}: {prefix}{key} must be a flat list, got {show(value)}")
            else:
                out.append(f"{prefix}{key}={show_value(value)}")
        return out

    return pairs(data, "")
