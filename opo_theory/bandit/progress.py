"""Progress lines of long bandit experiments: written to stderr inside ``reporting()`` (the `bandit` command,
figure builds, notebook 03), silent elsewhere (tests, claims, library use)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_ON: ContextVar[bool] = ContextVar("bandit_progress", default=False)


@contextmanager
def reporting(on: bool = True) -> Iterator[None]:
    """Within the block, ``report`` writes its lines to stderr (``on=False``: silences them)."""
    token = _ON.set(on)
    try:
        yield
    finally:
        _ON.reset(token)


def report(message: str) -> None:
    """One progress line on stderr, inside ``reporting()`` only."""
    if _ON.get():
        print(message, file=sys.stderr, flush=True)
