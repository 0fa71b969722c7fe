"""Which LM logs the figures read: the committed ones, a fresh rerun, or (``figures --runs DIR``) a user's own
`compare` output, chosen for a block with ``reading_runs`` so the artifact scripts take no extra argument."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

_CHOSEN: ContextVar[Path | None] = ContextVar("figures_runs_dir", default=None)
_RERUN_DONE: set[Path] = set()          # rerun directories this process has already trained to the end


def chosen_runs() -> Path | None:
    """The `compare` directory chosen with ``reading_runs``, None outside it."""
    return _CHOSEN.get()


@contextmanager
def chosen(var: ContextVar, value):
    """Within the block, ``var`` holds ``value`` (restored after, also on an error)."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


def reading_runs(directory: str | Path | None):
    """Within the block, the LM artifacts read the `compare` output in ``directory`` (None: their default)."""
    return chosen(_CHOSEN, None if directory is None else require_compare_dir(directory))


def require_compare_dir(directory: str | Path) -> Path:
    """``directory`` as a Path when it holds a finished `compare` output; else ValueError saying what it holds."""
    from opo_theory.lm.training.run_dir import SUMMARY, CompareDir, RunDir

    d = Path(directory)
    if CompareDir(d).finished():
        return d
    if RunDir(d).started():
        raise ValueError(f"--runs {d} holds a single `train` run; the LM figures compare objectives over seeds: "
                         "give the --out directory of `opo-theory compare`")
    raise ValueError(f"--runs {d} holds no finished `compare` output (no {SUMMARY}); produce one with "
                     f"`opo-theory compare --out {d}` (--resume finishes an interrupted one)")


def reads_runs(module) -> bool:
    """True when an artifact script uses opo_theory.figures.runs (it draws from LM run logs)."""
    return any(getattr(v, "__module__", None) == "opo_theory.figures.runs" for v in vars(module).values())


def rerun_once(directory: Path, objectives: Sequence[str], seeds: int = 3, preset: str = "cpu-tiny") -> Path:
    """Train (or resume) the `compare` run behind the committed logs into ``directory``, once per process, its
    progress on stderr."""
    if directory not in _RERUN_DONE:
        from opo_theory.lm.experiments.compare import compare
        from opo_theory.lm.progress import note

        note(f"figures --rerun: training {', '.join(objectives)} x {seeds} seeds ({preset}) into "
             f"{directory.resolve()}; finished runs there are reused, interrupted ones resumed")
        compare(list(objectives), seeds, preset, directory, resume=True)
        _RERUN_DONE.add(directory)
    return directory
