"""A run directory: its file names, what it records (the fully resolved configuration, checksums of what the run
wrote), the checks before a run writes there (new and empty, or this run's own files, whole and unchanged), its
checkpoint and its summary; and a `compare` directory: its summary and its <run dir>/seed<k> run directories.

Every module reads and writes runs through ``RunDir`` and ``CompareDir``; no other module spells a file name.
A refusal is one RunDirError line naming the file and the difference; nothing here removes or overwrites a file
the toolkit did not create (only the temporaries of RUN_FILES are cleaned up)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from opo_theory.io import (
    dumps_json,
    is_temporary_of,
    json_line,
    read_json,
    read_jsonl,
    remove_stale_temporaries,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from opo_theory.lm.training.config import FLAG_FIELDS, RUNTIME_FIELDS, TrainConfig
from opo_theory.stats import tail_mean
from opo_theory.validation import show

CONFIG, METRICS, CHECKPOINT, PRE_RL = "config.json", "metrics.jsonl", "checkpoint.pt", "pre_rl.json"
RUN_FILES = (CONFIG, METRICS, CHECKPOINT, PRE_RL)
SUMMARY, SUMMARY_MD = "summary.json", "summary.md"            # a compare's summary
AUDIT, PARTIAL = "audit.json", "partial"      # an audit's record; its folder of per-(seed, objective) results
CONFIG_BEFORE = "config.json before the steps changed"   # checkpoint mark kept while a resume rewrites config.json

SUMMARY_KEYS = {  # summary name -> (metric key, how many final steps to average; 0 = last evaluation)
    "final_reward": ("reward/mean", 10), "final_accuracy": ("accuracy", 10),
    "val_accuracy": ("val/accuracy", 0), "ood_accuracy": ("val/ood_accuracy", 0),
    "grad_norm_last20": ("grad/norm", 20), "entropy_last20": ("entropy/mean", 20),
    "delta_m3_last20": ("delta/m3", 20), "response_efficiency_last20": ("grad/response_efficiency", 20),
}


# Objective config fields that are no longer hyperparameters (normalizer: now PolicyBatch.normalizer, set by the
# engines); config.json files written before record them, at None.
RETIRED_OBJECTIVE_FIELDS = ("normalizer",)


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (one line naming the file and the difference)."""


def run_summary(rows: list[dict]) -> dict[str, float]:
    """Each SUMMARY_KEYS statistic of one run's metrics rows (stats.tail_mean)."""
    return {name: tail_mean(rows, key, last) for name, (key, last) in SUMMARY_KEYS.items()}


SEED_PREFIX = "seed"


def seed_dir_name(seed: int) -> str:
    """The directory of seed ``seed`` inside a compare's run directory: seed<k>."""
    return f"{SEED_PREFIX}{seed}"


def partial_name(seed: int, objective: str) -> str:
    """An audit's resumable result of one rollout seed and objective: partial/seed<k>-<objective>.json."""
    return f"{seed_dir_name(seed)}-{objective}.json"


def resolved_objective(cfg: TrainConfig) -> dict:
    """Every hyperparameter of the run's objective with its value (the defaults included, not only overrides)."""
    from opo_theory.objectives import get

    return json.loads(json.dumps(vars(get(cfg.objective).make_config(**cfg.objective_config))))


def run_record(cfg: TrainConfig, sft_info: dict, provenance: dict) -> dict:
    """config.json: the settings, the resolved objective hyperparameters, the SFT warm-up, the provenance."""
    return {"config": cfg.to_json(), "objective_resolved": resolved_objective(cfg), "sft": sft_info,
            "provenance": provenance}


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


def resume_hint(diff: dict[str, tuple]) -> str:
    """The options that give a resume the stored values of the differing settings ``{key: (stored, now)}``."""
    def text(value) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def option(key, value) -> str:
        if key == "objective_config":
            return " ".join(f"--set objective.{k}={text(v)}" for k, v in sorted((value or {}).items())) or \
                "no objective.KEY=VALUE setting"
        return f"--{key.replace('_', '-')} {text(value)}" if key in FLAG_FIELDS else f"--set {key}={text(value)}"
    return ", ".join(option(k, stored) for k, (stored, _) in sorted(diff.items()))


class RunDir:
    """One run's directory (``train --out``, or <compare dir>/<run dir>/seed<k>): config.json (the record),
    metrics.jsonl (one row per step), checkpoint.pt (weights, optimizer, RNG, checksums of the files above) and
    pre_rl.json (the policy's evaluation before the first update)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def pre_rl(self) -> Path:
        return self.path / PRE_RL

    def started(self) -> bool:
        """True when a run has written its record (config.json) here."""
        return self.config.is_file()

    # ------------------------------------------------------------------ checks before a run writes
    def check_path(self) -> None:
        """The directory is not a link, and each run file in it is a plain file (a link would lead writes elsewhere)."""
        if os.path.islink(self.path):
            raise RunDirError(f"--out {self.path} is a symbolic link; give the directory itself (a run writes only "
                              "into a directory it can verify)")
        for name in RUN_FILES:
            path = self.path / name
            if os.path.lexists(path) and (os.path.islink(path) or not path.is_file()):
                raise RunDirError(f"{path} is not a plain file (a link or a directory): not a file this toolkit "
                                  "wrote; choose another --out")

    def require_empty(self, why: str) -> None:
        """The directory is new or empty (not a link); else a RunDirError naming what it holds and ``why``."""
        self.check_path()
        held = sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []
        if held:
            raise RunDirError(f"--out {self.path} is not empty (it has {', '.join(held[:3])}"
                              f"{', ...' if len(held) > 3 else ''}): {why}; choose a new or empty directory")

    def check(self, cfg: TrainConfig, resume: bool) -> bool:
        """True when the directory holds this run's checkpoint to resume (verified); False when the run starts
        (over) from step 0; a RunDirError naming the file and the difference for anything else."""
        self.check_path()
        if not self.started():
            foreign = sorted(p.name for p in self.path.iterdir() if not is_temporary_of(p.name, RUN_FILES)) \
                if self.path.is_dir() else []
            if foreign:
                raise RunDirError(f"--out {self.path} is not empty and holds no {CONFIG} (it has "
                                  f"{', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): not a run "
                                  "directory; choose a new or empty one")
            remove_stale_temporaries(self.path, *RUN_FILES)
            return False
        self.check_same_run(read_json(self.config, "a run's settings"), cfg)
        if not resume:
            raise RunDirError(f"output dir {self.path} already holds this run; pass --resume to continue it (--steps "
                              "N extends it to N steps), or choose another --out to start over")
        remove_stale_temporaries(self.path, *RUN_FILES)      # left by a process killed mid-write
        if not self.checkpoint.exists():
            return False
        self.verified_checkpoint()
        return True

    def check_same_run(self, stored, cfg: TrainConfig) -> None:
        """config.json's settings and resolved objective hyperparameters equal this run's (runtime fields aside);
        else a RunDirError naming each differing key with its stored and requested value, and how to resume."""
        if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
            raise RunDirError(f"{self.config} holds no run settings (no 'config' table): the file is damaged")
        settings = {k: v for k, v in stored["config"].items() if k not in RUNTIME_FIELDS}
        identity = json.loads(json.dumps(cfg.identity()))
        if settings != identity:
            diff = {k: (settings.get(k), identity.get(k)) for k in sorted(settings.keys() | identity.keys())
                    if settings.get(k) != identity.get(k)}
            named = "; ".join(f"{k}: {show(old)} stored, {show(new)} requested" for k, (old, new) in diff.items())
            raise RunDirError(f"output dir {self.path} holds a different run ({named}): to resume it, pass the "
                              f"stored values ({resume_hint(diff)}) with --resume; only "
                              f"{', '.join(RUNTIME_FIELDS)} may differ (--steps N extends the run to N steps); "
                              "to start this run instead, choose another --out")
        if "objective_resolved" not in stored:
            raise RunDirError(f"{self.config} records no resolved objective hyperparameters (written by an older "
                              "version), so a resume cannot be verified; start it in a new --out")
        now = resolved_objective(cfg)
        old = stored["objective_resolved"]
        if isinstance(old, dict):     # a field that left the configs, recorded at its None default by older runs
            old = {k: v for k, v in old.items() if not (k in RETIRED_OBJECTIVE_FIELDS and v is None)}
        if old != now:
            old = old if isinstance(old, dict) else {}
            diff = [f"{k} {old.get(k)!r} -> {now.get(k)!r}" for k in sorted(old.keys() | now.keys())
                    if old.get(k) != now.get(k)]
            raise RunDirError(f"{self.config}: the objective's hyperparameters changed since the run started "
                              f"({'; '.join(diff) or 'not a table'}: a default changed in the code?), so this "
                              "version cannot resume it; start a new --out")

    # ------------------------------------------------------------------ the record
    def record(self) -> dict:
        """config.json's record, its 'config' table checked (one line naming the file when damaged)."""
        record = read_json(self.config, "a run's settings")
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise RunDirError(f"{self.config} holds no run settings (no 'config' table): the file is damaged")
        return record

    def stored_config(self) -> TrainConfig:
        """The TrainConfig recorded in config.json (one line naming the file when it is damaged)."""
        try:
            return TrainConfig(**self.record()["config"])
        except (TypeError, KeyError, ValueError) as exc:
            raise RunDirError(f"{self.config} does not hold valid run settings ({str(exc).splitlines()[0][:160]}): "
                              "the file is damaged") from None

    def start(self, record: dict) -> None:
        """A new run: the directory, config.json holding ``record`` (run_record, or an engine's own) and an empty
        metrics.jsonl."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config, record)
        write_text_atomic(self.metrics, "")

    def append_row(self, row: dict) -> None:
        """One metrics.jsonl row (strict JSON, one line), for an engine that logs a row at a time."""
        with open(self.metrics, "a") as fh:
            fh.write(json_line(row))

    def read_metrics(self) -> list[dict]:
        """metrics.jsonl's rows (read_run_metrics)."""
        return read_run_metrics(self.metrics)

    def summary(self) -> dict[str, float]:
        """run_summary of metrics.jsonl."""
        return run_summary(self.read_metrics())

    def write_pre_rl(self, record: dict) -> None:
        """pre_rl.json: the policy's evaluation before the first update."""
        write_json_atomic(self.pre_rl, record)

    # ------------------------------------------------------------------ the checkpoint
    def file_marks(self) -> dict:
        """Checksums of the run's files as a checkpoint is saved: config.json, pre_rl.json and metrics.jsonl's
        rows so far (its byte length and their SHA-256)."""
        return {CONFIG: sha256_file(self.config),
                PRE_RL: sha256_file(self.pre_rl) if self.pre_rl.exists() else None,
                METRICS: {"bytes": self.metrics.stat().st_size, "sha256": sha256_file(self.metrics)}}

    def save_checkpoint(self, state: dict) -> None:
        """checkpoint.pt (checkpoint.save_state: atomic, loadable with weights_only) holding ``state`` and the
        file_marks that a resume verifies."""
        from opo_theory.lm.training.checkpoint import save_state

        save_state(self.checkpoint, {**state, "files": self.file_marks()})

    def verified_checkpoint(self) -> dict:
        """checkpoint.pt's state (loaded safely, its checksum verified) once the files it was saved with are
        unchanged: config.json and pre_rl.json the same bytes, metrics.jsonl's rows before its step the same bytes,
        the rows after them whole and in order (only a half-written last row may be cut)."""
        from opo_theory.lm.training.checkpoint import load_state

        state = load_state(self.checkpoint)
        marks = state.get("files")
        if not isinstance(marks, dict) or not isinstance(state.get("step"), int):
            raise RunDirError(f"{self.checkpoint} records no step or file checksums: not a run checkpoint")
        if sha256_file(self.config) not in (marks.get(CONFIG), marks.get(CONFIG_BEFORE)):
            raise RunDirError(f"{self.checkpoint} was saved with a different {CONFIG} (a checkpoint from another "
                              f"run, or {CONFIG} edited): choose another --out")
        if marks.get(PRE_RL) is not None and (not self.pre_rl.is_file() or marks[PRE_RL] != sha256_file(self.pre_rl)):
            raise RunDirError(f"{self.pre_rl} is missing or differs from the one {CHECKPOINT} was saved with")
        rows = read_jsonl(self.metrics, counter="step")     # every row whole and in step order
        size, digest = marks[METRICS]["bytes"], marks[METRICS]["sha256"]
        if not self.metrics.is_file() or self.metrics.stat().st_size < size or \
                sha256_file(self.metrics, size) != digest:
            raise RunDirError(f"{self.metrics}: the rows of steps 0-{state['step'] - 1} differ from those "
                              f"{CHECKPOINT} was saved with (edited, deleted or damaged)")
        if len(rows) < state["step"]:
            raise RunDirError(f"{self.metrics} holds {len(rows)} rows, fewer than the checkpoint's {state['step']} "
                              "steps")
        return state

    def restore(self) -> dict:
        """The verified checkpoint's state, metrics.jsonl cut back to the rows it was saved with (the steps after
        it run again)."""
        state = self.verified_checkpoint()
        with open(self.metrics, "r+b") as fh:
            fh.truncate(state["files"][METRICS]["bytes"])
        return state

    def set_steps(self, steps: int, state: dict) -> int | None:
        """Record ``steps`` as the run's length in config.json when a resume asks for another (--steps); returns
        the steps recorded before (None when unchanged). config.json is checksummed by the checkpoint, so the
        checkpoint is saved first accepting the old and the new bytes, then config.json is replaced: both writes
        are atomic and a kill between them leaves a run that resumes (and records the steps again)."""
        record = self.record()
        before = record["config"].get("steps")
        if before == steps:
            return None
        record["config"]["steps"] = steps
        text = dumps_json(record, indent=2, sort_keys=True) + "\n"   # write_json_atomic's form; these bytes are hashed
        marks = {**state["files"], CONFIG: hashlib.sha256(text.encode("utf-8")).hexdigest(),
                 CONFIG_BEFORE: sha256_file(self.config)}
        from opo_theory.lm.training.checkpoint import save_state

        save_state(self.checkpoint, {**state, "files": marks})
        write_text_atomic(self.config, text)
        return before


class CompareDir:
    """A `compare` output: summary.json (the labels, seeds and run directories), summary.md, and one RunDir per
    label and seed at <run dir>/seed<k>."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def finished(self) -> bool:
        """True when the comparison wrote its summary.json (every run done)."""
        return self.summary_path.is_file()

    def run(self, dirname: str, seed: int) -> RunDir:
        """The RunDir of one run directory name (a label or its filesystem-safe form) and seed."""
        return RunDir(self.path / dirname / seed_dir_name(seed))

    def summary(self) -> dict:
        """summary.json, the fields readers use checked (one line naming the file when damaged)."""
        summary = read_json(self.summary_path, "a `compare` summary")
        problem = None
        if not isinstance(summary, dict):
            problem = "it is not a JSON object"
        elif not isinstance(summary.get("seeds"), int) or isinstance(summary["seeds"], bool) or summary["seeds"] < 1:
            problem = f"'seeds' must be a positive integer, got {show(summary.get('seeds'))}"
        elif not isinstance(summary.get("objectives"), list) or not summary["objectives"] or \
                not all(isinstance(o, str) and o for o in summary["objectives"]):
            problem = f"'objectives' must be a non-empty list of names, got {show(summary.get('objectives'))}"
        elif not isinstance(summary.get("run_dirs", {}), dict) or not all(
                isinstance(v, str) and v and "/" not in v and v not in (".", "..")
                for v in summary.get("run_dirs", {}).values()):
            problem = f"'run_dirs' must map labels to directory names, got {show(summary.get('run_dirs'))}"
        if problem:
            raise RunDirError(f"{self.summary_path}: {problem}: the file is damaged")
        return summary

    def dirname(self, label: str) -> str:
        """The directory of one label (summary.json's run_dirs; older runs: the label itself)."""
        return self.summary().get("run_dirs", {}).get(label, label)

    def seed_run(self, label: str, seed: int = 0) -> RunDir:
        """The RunDir of ``label``'s seed ``seed`` (summary.json's run_dirs)."""
        return self.run(self.dirname(label), seed)

    def write_summary(self, record: dict, markdown: str) -> None:
        """summary.json (``record``) and summary.md (its table as ``markdown``), each atomically."""
        write_json_atomic(self.summary_path, record)
        write_text_atomic(self.path / SUMMARY_MD, markdown)


def holds_run(out: str | Path) -> bool:
    """True when ``out`` holds a `train` run (config.json) or a `compare` run (<run dir>/seed<k>/config.json)."""
    out = Path(out)
    return RunDir(out).started() or any(out.glob(f"*/{SEED_PREFIX}*/{CONFIG}"))
