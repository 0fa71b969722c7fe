"""Parse `--set key=value` overrides against a function's or dataclass's defaults (typed, validated).

One text form per type, the one ``show_value`` prints (so ``--list-settings`` output can be pasted back):
true/false for bools, plain numbers and strings, comma lists for tuples (``0.3,0.6,0.9``; the
bracketed forms ``(0.3, 0.6)`` and ``[0.3, 0.6]`` are accepted too), None for an unset optional value.
A TOML ``--config`` file holds the same keys with TOML's own types (``settings_from_toml``), checked as
those types: ``bf16 = 1`` is not true, a list is not a path, a date is not a string.
"""

from __future__ import annotations

import ast
import datetime
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
    if isinstance(default, (int, float, tuple)) and not isinstance(default, bool) and not text.isascii():
        raise ValueError("expected a number in ASCII digits")      # float('١') would read an Arabic-Indic one
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


TOML_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string", tuple: "an array"}
TOML_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}


def typed_value(value: Any, default: Any) -> Any:
    """A TOML value checked against the type of ``default`` (no coercion: 1 is not true, a list not a path,
    a date not a string); an int is a float where a float is expected; arrays hold items of the tuple's kind."""
    if isinstance(value, (datetime.date, datetime.time)):
        raise ValueError("a TOML date or time is not a setting value")
    kind = next((k for k in TOML_KIND if isinstance(default, k)), None)     # bool before int
    if kind is tuple:
        if not isinstance(value, list):
            raise ValueError(f"expected an array, got {show(value)}")
        return tuple(typed_value(v, default[0] if default else 0.0) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is None:                        # an unset optional value: a number or a string
        ok = isinstance(value, (int, float, str)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise ValueError(f"expected {TOML_KIND.get(kind, 'a number or a string')}, got {show(value) if isinstance(value, str) else show_value(value)} "
                         f"(a TOML {TOML_NAMES.get(type(value), type(value).__name__)})")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    return _finite(value)


class TomlSetting(str):
    """One ``--config`` entry: reads as its ``key=value`` text (callers sort settings by key prefix) and keeps
    the key and the TOML value with its type for ``parse_overrides`` (checked by ``typed_value``)."""

    key: str
    value: Any
    source: str

    def __new__(cls, key: str, value: Any, source: str = "") -> TomlSetting:
        entry = super().__new__(cls, f"{key}={show_value(value)}")
        entry.key, entry.value, entry.source = key, value, source
        return entry


def did_you_mean(key: str, allowed) -> str:
    """The suffix " (did you mean X?)" naming the allowed key whose letters are the initials of ``key``'s words
    (learning_rate -> lr), else the closest one by difflib; '' when none is close."""
    import difflib

    initials = "".join(word[:1] for word in key.split("_"))
    close = [initials] if "_" in key and initials in allowed else difflib.get_close_matches(key, list(allowed), 1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_overrides(pairs: list[str] | None, defaults: dict[str, Any], what: str, once: bool = False) -> dict[str, Any]:
    """['k=v', ...] (or TomlSetting entries) -> {k: typed v}; unknown keys or bad values raise ValueError.
    A later pair overrides an earlier one (--set over --config), or with ``once`` (one NAME(KEY=VALUE,...)
    spec) a key given twice is refused."""
    out = {}
    for pair in pairs or []:
        if once and str(pair).split("=", 1)[0] in out:
            raise ValueError(f"{what} sets {str(pair).split('=', 1)[0]} twice")
        if isinstance(pair, TomlSetting):
            if pair.key not in defaults:
                raise ValueError(f"--config {show(pair.source)}: unknown setting {show(pair.key)} for {what}"
                                 f"{did_you_mean(pair.key, defaults)}; allowed: {', '.join(sorted(defaults))}")
            try:
                out[pair.key] = typed_value(pair.value, defaults[pair.key])
            except (TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"--config {show(pair.source)}: bad value for {pair.key} of {what}: {exc}") from None
            continue
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {show(pair)}")
        key, text = pair.split("=", 1)
        if key not in defaults:
            raise ValueError(f"unknown setting {show(key)} for {what}{did_you_mean(key, defaults)}; "
                             f"allowed: {', '.join(sorted(defaults))}")
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


def settings_from_toml(path: str) -> list[TomlSetting]:
    """A TOML file's keys as TomlSetting entries (tables nest as ``table.key``), to go before ``--set``'s;
    values keep their TOML types and are checked as such (``typed_value``)."""
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ValueError(f"--config {show(path)} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"--config {show(path)} is not valid TOML: {exc}") from None
    except (RecursionError, MemoryError):
        raise ValueError(f"--config {show(path)} nests arrays or tables too deeply to read") from None

    def pairs(table: dict, prefix: str, depth: int) -> list[TomlSetting]:
        if depth > 2:
            raise ValueError(f"--config {show(path)}: {prefix[:60]}... nests tables deeper than [objective]")
        out = []
        for key, value in table.items():
            if isinstance(value, dict):
                out += pairs(value, f"{prefix}{key}.", depth + 1)
            elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
                raise ValueError(f"--config {show(path)}: {prefix}{key} must be a flat list, got {show(value)}")
            else:
                out.append(TomlSetting(f"{prefix}{key}", value, path))
        return out

    return pairs(data, "", 1)


def split_top_level(text: str) -> list[str]:
    """'opo, dpo(beta=1,seq_logratio=mean)' -> ['opo', 'dpo(beta=1,seq_logratio=mean)'] (commas in
    parentheses stay; spaces around items go)."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return [item.strip() for item in items + [cur] if item.strip()]


def parse_spec(text: str, what: str) -> tuple[str, list[str]]:
    """'NAME(KEY=VALUE,...)' or 'NAME' -> (NAME, ['KEY=VALUE', ...]) with spaces stripped and empty pairs
    dropped; the pairs are not typed or checked here (``parse_overrides`` does that against the defaults).
    ``what`` names the item in the error ('--objectives item ...')."""
    name, paren, rest = text.partition("(")
    if paren and not rest.endswith(")"):
        raise ValueError(f"{what} must be NAME or NAME(KEY=VALUE,...)")
    return name.strip(), [p.strip() for p in rest[:-1].split(",") if p.strip()] if paren else []
