"""The result of checking one claim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("proved", "verified", "conditional", "refuted")


@dataclass(frozen=True)
class Verdict:
    """id, source and statement of a claim, and what the check found.

    verdict: 'proved' (sympy), 'verified' (numeric, >= 1000 seeded instances, worst case in
    numbers), 'conditional' (holds only under the extra assumption stated in detail, with a
    counterexample outside it) or 'refuted' (counterexample in detail/numbers).
    """

    id: str
    source: str
    statement: str
    verdict: str
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Claim:
    """A checkable statement: ``check()`` returns (verdict, detail, numbers)."""

    id: str
    source: str
    statement: str
    check: Callable[[], tuple[str, str, dict[str, Any]]]

    def run(self) -> Verdict:
        verdict, detail, numbers = self.check()
        return Verdict(self.id, self.source, self.statement, verdict, detail, numbers)
