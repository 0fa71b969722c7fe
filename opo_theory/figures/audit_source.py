"""Which `audit` output the audit figures read: the committed one, a fresh rerun, or (``figures --audit DIR``) a
user's own `opo-theory audit --out DIR`, chosen for a block with ``reading_audit`` so the scripts take no argument."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

_CHOSEN: ContextVar[Path | None] = ContextVar("figures_audit_dir", default=None)


def chosen_audit() -> Path | None:
    """The audit directory chosen with ``reading_audit``, None outside it."""
    return _CHOSEN.get()


def reading_audit(directory: str | Path | None):
    """Within the block, the audit figures read the `audit` output in ``directory`` (None: their default)."""
    from opo_theory.figures.source import chosen

    return chosen(_CHOSEN, None if directory is None else require_audit_dir(directory))


def require_audit_dir(directory: str | Path) -> Path:
    """``directory`` as a Path when it holds an `audit` output (audit.json); else ValueError saying what it holds."""
    d = Path(directory)
    if (d / "audit.json").is_file():
        return d
    if (d / "summary.json").is_file() or (d / "config.json").is_file():
        raise ValueError(f"--audit {d} holds a `compare` or `train` run, not an audit: draw it with --runs {d}, "
                         f"or give the --out directory of `opo-theory audit`")
    raise ValueError(f"--audit {d} holds no audit output (no audit.json); produce one with "
                     f"`opo-theory audit --out {d}`")


def read_audit(directory: Path) -> dict:
    """The audit.json record in ``directory`` (ValueError naming the file when it is damaged or not an audit)."""
    from opo_theory.io import read_json

    path = directory / "audit.json"
    record = read_json(path, "an `opo-theory audit` record")
    if not isinstance(record, dict) or not isinstance(record.get("summary"), dict) or not record["summary"]:
        raise ValueError(f"{path} holds no per-objective audit summary: not written by `opo-theory audit`")
    return record


def audit_record(rerun: bool = False) -> tuple[dict, Path]:
    """(audit.json record, its directory): the audit chosen with ``reading_audit``, else the committed default
    audit or (``rerun``) a fresh one (opo_theory.lm.experiments.audit.audit_record)."""
    chosen = chosen_audit()
    if chosen is not None:
        return read_audit(chosen), chosen
    from opo_theory.lm.experiments.audit import audit_record as default_record

    return default_record(rerun)


def reads_audit(module) -> bool:
    """True when an artifact script draws from an audit record (it defines or imports ``audit_record``)."""
    return callable(getattr(module, "audit_record", None))


def missing_objectives(module, record: dict) -> list[str]:
    """The objectives an artifact's comparison needs (its ``AUDIT_NEEDS``) that ``record`` did not audit."""
    return [o for o in getattr(module, "AUDIT_NEEDS", ()) if o not in record["summary"]]
