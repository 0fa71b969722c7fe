"""A run directory: what it records (the fully resolved configuration, checksums of what the run wrote) and
the checks before a run writes there: new and empty, or this run's own files, whole and unchanged.

``check_run_dir`` refuses in one line naming the file and the difference; it never removes or overwrites a
file the toolkit did not create (only the temporaries of RUN_FILES are cleaned up)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from opo_theory.io import (
    is_temporary_of,
    read_json,
    read_jsonl,
    remove_stale_temporaries,
    sha256_file,
)
from opo_theory.lm.checkpoint import load_state
from opo_theory.lm.config import RUNTIME_FIELDS, TrainConfig
from opo_theory.validation import show

CONFIG, METRICS, CHECKPOINT, PRE_RL = "config.json", "metrics.jsonl", "checkpoint.pt", "pre_rl.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, PRE_RL)


# Objective config fields that are no longer hyperparameters (normalizer: now PolicyBatch.normalizer, set by the
# engines); config.json files written before record them, at None.
RETIRED_OBJECTIVE_FIELDS = ("normalizer",)


class RunDirError(ValueError):
    pass


def resolved_objective(cfg: TrainConfig) -> dict:
    """Every hyperparameter of the run's objective with its value (the defaults included, not only overrides)."""
    from opo_theory.objectives import get

    return json.loads(json.dumps(vars(get(cfg.objective).make_config(**cfg.objective_config))))


def run_record(cfg: TrainConfig, sft_info: dict, provenance: dict) -> dict:
    """config.json: the settings, the resolved objective hyperparameters, the SFT warm-up, the provenance."""
    return {"config": cfg.to_json(), "objective_resolved": resolved_objective(cfg), "sft": sft_info,
            "provenance": provenance}


def file_marks(out: Path) -> dict:
    """Checksums of the run's files as a checkpoint is saved: config.json, pre_rl.json and metrics.jsonl's
    rows so far (its byte length and their SHA-256)."""
    metrics = out / METRICS
    return {CONFIG: sha256_file(out / CONFIG),
            PRE_RL: sha256_file(out / PRE_RL) if (out / PRE_RL).exists() else None,
            METRICS: {"bytes": metrics.stat().st_size, "sha256": sha256_file(metrics)}}


def check_out_path(out: Path) -> None:
    """``out`` is not a link, and each run file in it is a plain file (a link would lead writes elsewhere)."""
    if os.path.islink(out):
        raise RunDirError(f"--out {out} is a symbolic link; give the directory itself (a run writes only into a "
                          "directory it can verify)")
    for name in RUN_FILES:
        path = out / name
        if os.path.lexists(path) and (os.path.islink(path) or not path.is_file()):
            raise RunDirError(f"{path} is not a plain file (a link or a directory): not a file this toolkit wrote; "
                              "choose another --out")


def require_empty_run_dir(out: Path, why: str) -> None:
    """``out`` is a new or empty directory (not a link); else a RunDirError naming what it holds and ``why``."""
    out = Path(out)
    check_out_path(out)
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held:
        raise RunDirError(f"--out {out} is not empty (it has {', '.join(held[:3])}{', ...' if len(held) > 3 else ''}):"
                          f" {why}; choose a new or empty directory")


def check_run_dir(out: Path, cfg: TrainConfig, resume: bool) -> bool:
    """True when ``out`` holds this run's checkpoint to resume (verified); False when the run starts (over)
    from step 0; a RunDirError naming the file and the difference for anything else."""
    out = Path(out)
    check_out_path(out)
    if not (out / CONFIG).exists():
        foreign = sorted(p.name for p in out.iterdir() if not is_temporary_of(p.name, RUN_FILES)) if out.is_dir() else []
        if foreign:
            raise RunDirError(f"--out {out} is not empty and holds no {CONFIG} (it has {', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}): not a run directory; choose a new or empty one")
        remove_stale_temporaries(out, *RUN_FILES)
        return False
    stored = read_json(out / CONFIG, "a run's settings")
    check_same_run(out, stored, cfg)
    if not resume:
        raise RunDirError(f"output dir {out} already holds this run; pass --resume to continue it")
    remove_stale_temporaries(out, *RUN_FILES)      # left by a process killed mid-write
    if not (out / CHECKPOINT).exists():
        return False
    verified_checkpoint(out)
    return True


def stored_config(out: Path) -> TrainConfig:
    """The TrainConfig recorded in ``out``'s config.json (one line naming the file when it is damaged)."""
    stored = read_json(out / CONFIG, "a run's settings")
    try:
        return TrainConfig(**stored["config"])
    except (TypeError, KeyError, ValueError) as exc:
        raise RunDirError(f"{out / CONFIG} does not hold valid run settings ({str(exc).splitlines()[0][:160]}): "
                          "the file is damaged") from None


def check_same_run(out: Path, stored, cfg: TrainConfig) -> None:
    """config.json's settings and resolved objective hyperparameters equal this run's (runtime fields aside)."""
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        raise RunDirError(f"{out / CONFIG} holds no run settings (no 'config' table): the file is damaged")
    settings = {k: v for k, v in stored["config"].items() if k not in RUNTIME_FIELDS}
    identity = json.loads(json.dumps(cfg.identity()))
    if settings != identity:
        diff = [f"{k} {show(settings.get(k))} there, {show(identity.get(k))} now"
                for k in sorted(settings.keys() | identity.keys()) if settings.get(k) != identity.get(k)]
        raise RunDirError(f"output dir {out} holds a different run ({'; '.join(diff)}): to resume it, pass its "
                          "values; to start this one, choose another --out")
    if "objective_resolved" not in stored:
        raise RunDirError(f"{out / CONFIG} records no resolved objective hyperparameters (written by an older "
                          "version), so a resume cannot be verified; start it in a new --out")
    now = resolved_objective(cfg)
    old = stored["objective_resolved"]
    if isinstance(old, dict):     # a field that left the configs, recorded at its None default by older runs
        old = {k: v for k, v in old.items() if not (k in RETIRED_OBJECTIVE_FIELDS and v is None)}
    if old != now:
        old = old if isinstance(old, dict) else {}
        diff = [f"{k} {old.get(k)!r} -> {now.get(k)!r}" for k in sorted(old.keys() | now.keys())
                if old.get(k) != now.get(k)]
        raise RunDirError(f"{out / CONFIG}: the objective's hyperparameters changed since the run started "
                          f"({'; '.join(diff) or 'not a table'}: a default changed in the code?); start a new --out")


def read_run_metrics(path: Path) -> list[dict]:
    """A run's metrics.jsonl rows for reading (compare, figures): steps 0, 1, ... in order, each value a number,
    true/false or null; a half-written last row is left out; anything else is a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no metrics at {path}: the run has not started")
    rows = read_jsonl(path, counter="step")
    for i, row in enumerate(rows, 1):
        bad = next((k for k, v in row.items() if v is not None and not isinstance(v, (int, float))), None)
        if bad is not None:
            raise RunDirError(f"{path} line {i}: {bad} is {show(row[bad])}, not a number: the file is damaged")
    return rows


def verified_checkpoint(out: Path) -> dict:
    """checkpoint.pt's state (loaded safely, its checksum verified) once the files it was saved with are
    unchanged: config.json and pre_rl.json the same bytes, metrics.jsonl's rows before its step the same bytes,
    the rows after them whole and in order (only a half-written last row may be cut)."""
    state = load_state(out / CHECKPOINT)
    marks = state.get("files")
    if not isinstance(marks, dict) or not isinstance(state.get("step"), int):
        raise RunDirError(f"{out / CHECKPOINT} records no step or file checksums: not a run checkpoint")
    if marks.get(CONFIG) != sha256_file(out / CONFIG):
        raise RunDirError(f"{out / CHECKPOINT} was saved with a different {CONFIG} (a checkpoint from another run, "
                          f"or {CONFIG} edited): choose another --out")
    if marks.get(PRE_RL) is not None and (not (out / PRE_RL).is_file() or marks[PRE_RL] != sha256_file(out / PRE_RL)):
        raise RunDirError(f"{out / PRE_RL} is missing or differs from the one {CHECKPOINT} was saved with")
    rows = read_jsonl(out / METRICS, counter="step")     # every row whole and in step order
    size, digest = marks[METRICS]["bytes"], marks[METRICS]["sha256"]
    if not (out / METRICS).is_file() or (out / METRICS).stat().st_size < size or \
            sha256_file(out / METRICS, size) != digest:
        raise RunDirError(f"{out / METRICS}: the rows of steps 0-{state['step'] - 1} differ from those "
                          f"{CHECKPOINT} was saved with (edited, deleted or damaged)")
    if len(rows) < state["step"]:
        raise RunDirError(f"{out / METRICS} holds {len(rows)} rows, fewer than the checkpoint's {state['step']} steps")
    return state
