"""Parse `--set key=value` overrides against a function's or dataclass's defaults (typed, validated)."""

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
        return tuple(_finite(kind(x)) for x in text.split(",") if x)
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
