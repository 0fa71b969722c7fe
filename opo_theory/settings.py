"""Parse `--set key=value` overrides against a function's or dataclass's defaults (typed, validated)."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any


def parse_value(text: str, default: Any) -> Any:
    """Convert ``text`` to the type of ``default`` (tuples from comma lists; None-defaults literal-eval)."""
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(default, tuple):
        kind = type(default[0]) if default else float
        return tuple(kind(x) for x in text.split(",") if x)
    if isinstance(default, (int, float, str)):
        return type(default)(text)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(pairs: list[str] | None, defaults: dict[str, Any], what: str) -> dict[str, Any]:
    """['k=v', ...] -> {k: typed v}; unknown keys or unparsable values raise ValueError."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        if key not in defaults:
            raise ValueError(f"unknown setting {key!r} for {what}; allowed: {', '.join(sorted(defaults))}")
        try:
            out[key] = parse_value(text, defaults[key])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad value {text!r} for {key} of {what}: {exc}") from None
    return out


def function_defaults(fn: Callable) -> dict[str, Any]:
    """Keyword defaults of ``fn``."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}
