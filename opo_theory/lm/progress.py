"""What long LM work says while it runs: progress and outcome lines on stderr (``quiet`` silences them),
and the one line a Ctrl-C ends with (which step was reached, where a resume restarts)."""

from __future__ import annotations

import sys


def note(message: str, quiet: bool = False, end: str = "\n") -> None:
    """Write one progress line to stderr, unless ``quiet``."""
    if not quiet:
        print(message, end=end, file=sys.stderr, flush=True)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work: ``where`` it stopped and what a rerun ``restarts`` from (checkpoints are written
    atomically, so the last one is always whole)."""

    def __init__(self, where: str, restarts: str) -> None:
        super().__init__(where)
        self.where, self.restarts = where, restarts

    def line(self, command: str) -> str:
        """The one line printed when the command ends on Ctrl-C: the step reached, then the command to rerun."""
        return f"opo-theory: interrupted at {self.where}; {self.restarts}: {command}"
