"""Evidence, the one rule that turns it into a verdict and its text, and the verdict record."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("proved", "verified", "conditional", "refuted")
# Whose statement a claim is: the OPO paper's, GOPO's, another paper's, or a check this toolkit adds (a
# consequence or a transfer the paper does not state, e.g. to parameter space).
ORIGINS = ("paper", "GOPO", "other paper", "toolkit")
KINDS = ("identity", "tight", "bound", "floor")
_RELATION = {"tight": "=", "bound": "<=", "floor": ">="}


@dataclass(frozen=True)
class Evidence:
    """One measured quantity against its theoretical value, reported as PEPit's examples do.

    kind 'identity': a sympy residual (measured, as text) that must simplify to 0 (theory '0');
    'tight': measured = theory within tol; 'bound': measured <= theory + tol (an upper bound);
    'floor': measured >= theory - tol (a lower bound).
    condition: None when the item tests the claim as stated; otherwise the setting (coordinate,
    regime, assumption) in which it tests it.
    """

    what: str
    measured: Any
    theory: Any
    kind: str = "tight"
    tol: float = 0.0
    condition: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"evidence kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def method(self) -> str:
        return "sympy" if self.kind == "identity" else "numeric"

    @property
    def holds(self) -> bool:
        """Whether the measurement meets the theory (a non-finite number never does)."""
        if self.kind == "identity":
            return str(self.measured) == "0"
        m, t = float(self.measured), float(self.theory)
        if not (math.isfinite(m) and math.isfinite(t)):
            return False
        if self.kind == "tight":
            return abs(m - t) <= self.tol
        return m <= t + self.tol if self.kind == "bound" else m >= t - self.tol

    def text(self) -> str:
        """'what: measured <relation> theory' and whether it holds."""
        if self.kind == "identity":
            found = "0 identically" if self.holds else f"{self.measured} != 0"
            return f"{self.what} (sympy residual {found})"
        tol = "" if not self.tol else (f" ± {self.tol:.0e}" if self.kind == "tight" else f" (tol {self.tol:.0e})")
        return (f"{self.what}: measured {float(self.measured):.4g} vs {_RELATION[self.kind]} "
                f"{float(self.theory):.4g}{tol} — {'holds' if self.holds else 'FAILS'}")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "measured": _plain(self.measured), "theory": _plain(self.theory),
                "method": self.method, "holds": self.holds}


def _plain(x: Any) -> str | float:
    """A JSON value: text stays text, numbers (numpy or sympy included) become floats."""
    if isinstance(x, str):
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


@dataclass(frozen=True)
class Finding:
    """What a check returns: its evidence, the setup it ran (no result words), notes, extra numbers."""

    evidence: list[Evidence]
    setup: str = ""
    notes: tuple[str, ...] = ()
    numbers: dict[str, Any] = field(default_factory=dict)


def judge(finding: Finding) -> tuple[str, str]:
    """The one rule from evidence to (verdict, detail).

    No item fails: 'proved' when some item is a sympy identity, else 'verified'. Some item fails:
    'conditional' when every item of at least one condition holds (the claim holds in that setting,
    the failing items are the counterexamples outside it), else 'refuted'.
    """
    ev = finding.evidence
    if not ev:
        raise ValueError("a check must return at least one evidence item")
    failed = [e for e in ev if not e.holds]
    holding = holding_conditions(finding)
    if not failed:
        verdict = "proved" if any(e.method == "sympy" for e in ev) else "verified"
        body = [_listing(ev, 12) + "."]
    else:
        verdict = "conditional" if holding else "refuted"
        body = ["Holds only under: " + "; ".join(holding) + "."] if holding else []
        body.append("Fails: " + _listing(failed, 4) + ".")
        kept = [e for e in ev if e.holds and (e.condition is None or e.condition in holding)]
        if kept:
            body.append("Holds: " + _listing(kept, 6) + ".")
    parts = ([finding.setup + "."] if finding.setup else []) + body + list(finding.notes)
    return verdict, " ".join(parts)


def holding_conditions(finding: Finding) -> list[str]:
    """The conditions (in order of first appearance) under which every evidence item holds."""
    ev = finding.evidence
    conditions = dict.fromkeys(e.condition for e in ev if e.condition is not None)
    return [c for c in conditions if all(e.holds for e in ev if e.condition == c)]


def _listing(items: list[Evidence], max_groups: int) -> str:
    """Items with the same text grouped, each group prefixed by (at most two of) its conditions."""
    groups: dict[str, list[str | None]] = {}
    for e in items:
        groups.setdefault(e.text(), []).append(e.condition)
    out = []
    for text, conds in list(groups.items())[:max_groups]:
        named = [c for c in conds if c is not None]
        label = "; ".join(named[:2]) + (f" (+{len(named) - 2} more settings)" if len(named) > 2 else "")
        out.append(f"[{label}] {text}" if named else text)
    extra = len(groups) - max_groups
    return "; ".join(out) + (f"; and {extra} more" if extra > 0 else "")


@dataclass(frozen=True)
class Verdict:
    """id, source and statement of a claim, and what the check found.

    verdict: 'proved' (sympy), 'verified' (numeric, seeded instances, worst case in numbers),
    'conditional' (holds only in the setting named in detail, with a counterexample outside it) or
    'refuted' (counterexample in detail); always ``judge`` of the evidence.
    """

    id: str
    source: str
    statement: str
    verdict: str
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    origin: str = "paper"

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, got {self.origin!r}")


@dataclass(frozen=True)
class Claim:
    """A checkable statement: ``check()`` returns a Finding; ``judge`` turns it into the verdict."""

    id: str
    source: str
    statement: str
    check: Callable[[], Finding]
    origin: str = "paper"

    def run(self) -> Verdict:
        finding = self.check()
        verdict, detail = judge(finding)
        return Verdict(self.id, self.source, self.statement, verdict, detail, finding.numbers,
                       [e.to_json() for e in finding.evidence], self.origin)


def identity(what: str, residuals, condition: str | None = None) -> Evidence:
    """A sympy identity: every residual in ``residuals`` (one expression or a list) must simplify to 0."""
    import sympy as sp

    items = residuals if isinstance(residuals, (list, tuple)) else [residuals]
    left = [r for r in (sp.simplify(sp.expand(x)) for x in items) if r != 0]
    return Evidence(what, "0" if not left else str(left[0]), "0", "identity", condition=condition)
