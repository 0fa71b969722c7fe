"""`compare`: several objectives (or variants) x seeds from the same SFT policy; summary.json / summary.md;
OPO against each baseline (opo_theory.stats: paired across seeds, stable across averaging windows)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from opo_theory.io import cache_dir
from opo_theory.lm.progress import Interrupted, note
from opo_theory.lm.training.config import TrainConfig, make_config
from opo_theory.lm.training.run_dir import (
    METRICS,
    SEED_PREFIX,
    SUMMARY_KEYS,
    SUMMARY_MD,
    CompareDir,
    run_summary,
)
from opo_theory.lm.training.run_dir import (
    read_run_metrics as read_metrics,  # steps in order, numbers only
)
from opo_theory.lm.training.trainer import start_run
from opo_theory.stats import WINDOWS, mean_ci95, versus, window_mean
from opo_theory.validation import require_int, require_output_dir, show

MAX_SEEDS = 1_000

# Named variants: `--objectives NAME` runs NAME's NAME(KEY=VALUE,...) form. A key is an objective hyperparameter
# or a train setting (dynamic_sampling, overlong_buffer, ...).
VARIANTS = {
    # OPO as released (author's verl fork): code geometry, length-normalised log-ratio clamped to ±5, drive
    # summed per group; code alpha 0.75 / mu 0.5 (code alpha runs the other way: paper 0.4 = code 0.6)
    "opo-released": "opo(geometry=code,seq_logratio=mean,delta_clamp=5,normalization=released,alpha=0.75,mu=0.5)",
    # OPO in the released code's geometry, the registry's other defaults (what the audit has called opo-code)
    "opo-code": "opo(geometry=code)",
    # DAPO as its paper specifies: dynamic sampling and the soft overlong penalty (the last 20% of max_new);
    # the OPO paper's released DAPO config had both off
    "dapo-paper": "dapo(dynamic_sampling=true,overlong_buffer=2)",
    # the baselines as the OPO paper's released configs ran them: DAPO with clip_low 0 / clip_high 0.28 and
    # rewards centred, not divided by the group std; GSPO with the default 0.2 clip on the sequence ratio
    # (GSPO's own paper, the registry's gspo default: 3e-4 / 4e-4)
    "dapo-released": "dapo(eps_low=0,eps_high=0.28,advantage=centered)",
    "gspo-released": "gspo(eps_low=0.2,eps_high=0.2)",
}
VALUE_TEXT = re.compile(r"[A-Za-z0-9_.+-]+")     # variant values: safe in a directory name


@dataclass(frozen=True)
class Variant:
    """One entry of --objectives: its label, registered objective, --set style settings and run directory."""

    label: str
    objective: str
    settings: tuple[str, ...]
    dirname: str


def split_variants(items: list[str] | str) -> list[str]:
    """'opo, opo(geometry=code,mu=0.5)' (or that text already split at every comma) -> the top-level items."""
    from opo_theory.settings import split_top_level

    return split_top_level(items if isinstance(items, str) else ",".join(items))


def parse_variant(item: str) -> Variant:
    """NAME, a VARIANTS name, or NAME(KEY=VALUE,...): each KEY an objective hyperparameter of NAME or a train
    setting; values are plain words/numbers; the run directory is NAME+KEY=VALUE+... (filesystem-safe)."""
    from opo_theory.lm.training.config import FLAG_FIELDS, settable_fields
    from opo_theory.objectives import available, get
    from opo_theory.settings import parse_spec

    name, pairs = parse_spec(VARIANTS.get(item, item), f"--objectives item {show(item)}")
    if name not in available():
        raise ValueError(f"--objectives item {show(item)}: unknown objective {show(name)}; allowed: "
                         f"{', '.join(available())} or a named variant ({', '.join(VARIANTS)})")
    obj_keys = set(get(name).make_config().__dict__)
    train_keys = {f.name for f in settable_fields()}
    settings, parts = [], []
    for pair in pairs:
        key, eq, value = (x.strip() for x in pair.partition("="))
        if not eq or not VALUE_TEXT.fullmatch(value):
            raise ValueError(f"--objectives item {show(item)}: {show(pair)} must be KEY=VALUE with a value of "
                             "letters, digits and _ . + -")
        if key in obj_keys and key in train_keys:
            raise ValueError(f"--objectives item {show(item)}: {key} is both an objective and a train setting")
        if key not in obj_keys and key not in train_keys:
            raise ValueError(f"--objectives item {show(item)}: unknown key {show(key)}; allowed: {name}'s "
                             f"{', '.join(sorted(obj_keys))} or a train setting (--list-settings)"
                             + (f" ({key} has its own option)" if key in FLAG_FIELDS else ""))
        if any(p.split("=", 1)[0] == key for p in parts):
            raise ValueError(f"--objectives item {show(item)} sets {key} twice")
        parts.append(f"{key}={value}")
        settings.append(f"objective.{key}={value}" if key in obj_keys else f"{key}={value}")
    if item in VARIANTS:
        return Variant(item, name, tuple(settings), item)
    return Variant(f"{name}({','.join(parts)})" if parts else name, name, tuple(settings), "+".join([name, *parts]))


def parse_variants(items: list[str] | str) -> list[Variant]:
    """The --objectives list as Variants; an empty list or a run listed twice is an error."""
    variants = [parse_variant(i) for i in split_variants(items)]
    if not variants:
        raise ValueError("--objectives must name at least one objective")
    seen: dict[tuple, str] = {}
    for v in variants:
        key = (v.objective, frozenset(v.settings))
        if key in seen or v.label in seen.values():
            raise ValueError(f"--objectives lists {show(v.label)} more than once"
                             + (f" (as {show(seen[key])})" if key in seen and seen[key] != v.label else ""))
        seen[key] = v.label
    return variants


def variant_config(variant: Variant, preset: str, seed: int, settings=None, steps=None, model=None) -> TrainConfig:
    """The TrainConfig of one variant: the shared settings, then the variant's own (which win)."""
    return make_config(variant.objective, preset, seed, [*(settings or []), *variant.settings], steps, model)

__all__ = ["SUMMARY_KEYS", "compare", "read_metrics", "run_summary", "summarize"]    # the summary lives in run_dir


def is_opo_variant(label: str) -> bool:
    """True for OPO and its variants (opo-exact, gopo, opo-released, ...): their config is an OPOConfig."""
    from opo_theory.objectives import get
    from opo_theory.objectives.opo import OPOConfig

    return isinstance(get(parse_variant(label).objective).make_config(), OPOConfig)


def verdict_from_runs(runs: dict[str, list[list[dict]]], key: str, what: str, claimed: str = "higher",
                      reference: str = "opo") -> dict:
    """stats.versus for ``key`` over the WINDOWS: ``reference`` against each baseline of {objective: [rows of
    seed 0, ...]} (OPO's own variants are not baselines), the claimed direction judged by the one rule."""
    kept = {o: seed_rows for o, seed_rows in runs.items() if o == reference or not is_opo_variant(o)}
    out = versus({w: {o: [window_mean(r, key, w) for r in seed_rows] for o, seed_rows in kept.items()}
                  for w in WINDOWS}, reference, what, claimed)
    return out | {"not_tested": [o for o in runs if o not in kept]}


def summarize(out: Path, objectives: list[str], seeds: int, run_dirs: dict[str, str] | None = None) -> dict:
    """{label: {SUMMARY_KEYS name: mean, ci95 and per-seed values}} over the runs of a compare directory."""
    table, runs = {}, CompareDir(out)
    for name in objectives:
        per_seed = [runs.run((run_dirs or {}).get(name, name), s).summary() for s in range(seeds)]
        table[name] = {k: dict(zip(("mean", "ci95"), mean_ci95([p[k] for p in per_seed]), strict=True))
                       | {"seeds": [p[k] for p in per_seed]} for k in SUMMARY_KEYS}
    return table


def markdown(table: dict) -> str:
    cols = list(SUMMARY_KEYS)
    lines = ["| objective | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{row[c]['mean']:.3g} ± {row[c]['ci95']:.2g}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nmean ± half-width of the 95% t-interval over seeds.\n"


def check_outputs(out: str | Path, cfg: TrainConfig) -> None:
    """The run directory and the SFT cache must be (creatable) writable directories; nothing is left behind."""
    require_output_dir("--out", out)
    require_output_dir("sft_cache", cache_dir(cfg.sft_cache))


def compare(objectives: list[str], seeds: int, preset: str, out: str | Path, settings=None,
            steps: int | None = None, resume: bool = False, quiet: bool = False, model: str | None = None) -> dict:
    """Train every objective or variant (parse_variant) for seeds 0..seeds-1 under out/<run dir>/seed<k>, then
    summarize."""
    out = Path(out)
    if not objectives:
        raise ValueError("--objectives must name at least one objective")
    variants = parse_variants(objectives)
    objectives = [v.label for v in variants]
    run_dirs = {v.label: v.dirname for v in variants}
    require_int("--seeds", seeds, 1, MAX_SEEDS)
    configs = {(v.dirname, s): variant_config(v, preset, s, settings, steps, model)
               for v in variants for s in range(seeds)}
    runs = CompareDir(out)
    check_outputs(out, next(iter(configs.values())))     # every config, path and run directory checked
    for (name, seed), cfg in configs.items():              # before any work starts
        runs.run(name, seed).check(cfg, resume)
    for i, ((name, seed), cfg) in enumerate(configs.items(), 1):     # a finished run resumes at its last step
        note(f"compare: run {i} of {len(configs)}", quiet)
        try:
            start_run(cfg, runs.run(name, seed).path, resume=resume, quiet=quiet).run()
        except Interrupted as stop:
            stop.where += f", run {i} of {len(configs)} of the comparison"
            raise
    table = summarize(out, objectives, seeds, run_dirs)
    runs.write_summary({"preset": preset, "seeds": seeds, "objectives": objectives, "run_dirs": run_dirs,
                        "settings": settings or [], "model": next(iter(configs.values())).model if configs else None,
                        "table": table}, markdown(table))
    note(f"compare: {len(configs)} runs done; summary in {runs.path / SUMMARY_MD} and {runs.summary_path}, logs "
         f"in {out}/<objective>/{SEED_PREFIX}<k>/{METRICS}", quiet)
    return table
