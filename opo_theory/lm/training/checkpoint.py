"""Checkpoint and cache files that load without running code and prove they are whole.

A file holds ``{"format": FORMAT, "state": state, "sha256": state_digest(state)}`` written by ``torch.save``:
tensors, numbers, strings, None and containers only (RNG states are uint8 tensors), so it loads with
``torch.load(weights_only=True)``, whose unpickler refuses every other object (a crafted pickle cannot
execute anything). The digest covers every tensor's bytes, dtype and shape and every plain value, so a
flipped byte anywhere in the data is found before the state is used.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from opo_theory.io import write_bytes_atomic

FORMAT = "opo-theory-state/1"


def state_digest(obj) -> str:
    """SHA-256 (hex) of a state: tensors by dtype, shape and bytes; dicts by sorted keys; plain values by type and repr."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    else:
        raise TypeError(f"a saved state holds only tensors, numbers, strings and containers, not {type(obj).__name__}")


def save_state(path: str | Path, state: dict) -> Path:
    """Write ``state`` with its digest to ``path`` atomically (a killed write leaves the old file or none)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state": state, "sha256": state_digest(state)}, buf)
    return write_bytes_atomic(path, buf.getvalue())


def load_state(path: str | Path) -> dict:
    """The state saved at ``path`` by ``save_state``, or a one-line ValueError naming the file: not a file
    this toolkit wrote (any pickle beyond tensors and plain values is refused unexecuted), or damaged."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except Exception as exc:        # noqa: BLE001 -- UnpicklingError, RuntimeError (zip), EOFError, ...: all refused
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise ValueError(f"{path} was refused: not a checkpoint this toolkit wrote, or damaged ({type(exc).__name__}: "
                         f"{first})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or not isinstance(blob.get("state"), dict):
        raise ValueError(f"{path} was refused: not a {FORMAT} file (written by another program or an older "
                         "version; delete it to start over)")
    try:
        digest = state_digest(blob["state"])
    except TypeError as exc:
        raise ValueError(f"{path} was refused: {exc}") from None
    if digest != blob.get("sha256"):
        raise ValueError(f"{path} is damaged: its contents do not match the SHA-256 stored with them")
    return blob["state"]


def load_weights(target, weights: dict, path: str | Path) -> None:
    """``target.load_state_dict(weights)`` (a model or an optimizer), or a one-line ValueError naming ``path``
    when they do not fit."""
    try:
        target.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
        raise ValueError(f"{path} does not fit the {type(target).__name__}: {detail[:200]}") from None
