"""`opo-theory train` and `opo-theory compare`: the parsers (light) and the runs (torch, imported inside).

Settings resolve in this order, each overriding the one before: TrainConfig defaults, the ``--preset``,
a ``--config FILE`` (TOML: the ``--set`` keys, an ``[objective]`` table for the objective's
hyperparameters), then ``--set KEY=VALUE ...``. ``--list-settings`` prints every key with its value,
range and meaning (from the TrainConfig field metadata). To add a command here: a ``configure`` branch
that adds its parser's arguments (``add_common`` for the shared ones) and a run function; an option
shared by train and compare goes into ``add_common``.
"""

from __future__ import annotations

import functools

DEFAULT_OBJECTIVES = "opo,grpo,dapo,gspo,dr-grpo"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def add_settings_options(p) -> None:
    """--set KEY=VALUE [KEY=VALUE ...] (repeatable), --config FILE, --list-settings."""
    p.add_argument("--set", dest="settings", action="append", nargs="+", metavar="KEY=VALUE",
                   help="override config fields (several after one --set, or --set repeated); objective.KEY=VALUE "
                        "sets an objective hyperparameter; --list-settings shows every key")
    p.add_argument("--config", metavar="FILE", help="TOML file of settings (the --set keys; an [objective] table "
                                                   "for the objective's hyperparameters); --set overrides it")
    p.add_argument("--list-settings", action="store_true",
                   help="print every setting with its value under --preset, its range and meaning, and exit")


def add_common(p) -> None:
    p.add_argument("--preset", default="cpu-tiny", help="named preset the settings start from (default cpu-tiny; "
                                                        "gpu-small needs a GPU)")
    p.add_argument("--model", help="'char-gpt' (default), 'hf:<local dir>' (transformers causal LM + tokenizer "
                                   "saved with save_pretrained; needs pip install -e .[hf]), 'smollm2-135m' "
                                   "(SmolLM2-135M-Instruct, installed by make setup) or 'gguf:<local .gguf file>'")
    p.add_argument("--out", help="run directory (required unless --list-settings)")
    p.add_argument("--steps", type=int, help="RL steps (overrides the steps setting)")
    p.add_argument("--resume", action="store_true", help="continue the run(s) in --out from the last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_settings_options(p)


def configure(name: str, p) -> None:
    if name == "train":
        p.add_argument("--objective", help="registered objective (see opo-theory objectives); required")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--engine", choices=("toolkit", "trl"), default="toolkit",
                       help="toolkit (default: this project's trainer) or trl (TRL's GRPOTrainer with the registry "
                            "objective and the diagnostics; --model hf:<dir>; needs pip install -e .[trl])")
        add_common(p)
        p.set_defaults(func=run_train)
    elif name == "compare":
        p.add_argument("--objectives", default=DEFAULT_OBJECTIVES, help="comma list of objectives, named variants (opo-released, opo-code, dapo-paper, dapo-released, gspo-released) or "
                       f"NAME(KEY=VALUE,...) variants, KEY an objective or train setting (default {DEFAULT_OBJECTIVES})")
        p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per objective (default 3)")
        add_common(p)
        p.set_defaults(func=run_compare)
    else:
        raise ValueError(f"opo_theory.lm.cli has no command {name!r}")


def split_names(text: str) -> list[str]:
    """'opo, grpo,' -> ['opo', 'grpo']: a comma list with the spaces around its items dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def resolved_settings(args) -> list[str]:
    """The ``key=value`` overrides in order of precedence: the --config file's, then --set's."""
    from opo_theory.settings import flatten, settings_from_toml

    return (settings_from_toml(args.config) if args.config else []) + flatten(args.settings)


def require_present(args, *flags: str) -> None:
    """Options argparse leaves optional (so --list-settings needs none) that a run needs."""
    missing = [f for f in flags if getattr(args, f.lstrip("-").replace("-", "_")) is None]
    if missing:
        raise ValueError(f"the following arguments are required: {', '.join(missing)}")


def check_model_files(model: str | None) -> None:
    """An ``hf:`` directory needs its tokenizer files next to config.json (checked before any work)."""
    from pathlib import Path

    if model is None or not model.startswith("hf:"):
        return
    path = Path(model[3:])
    if (path / "config.json").is_file() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise ValueError(f"model {model!r}: {path} holds no tokenizer files ({', '.join(TOKENIZER_FILES)}); save the "
                         "tokenizer there too (tokenizer.save_pretrained)")


def check_device(cfg) -> None:
    """A CUDA device without CUDA: one line saying which setting asked for it and what runs on a CPU."""
    import torch

    if not cfg.device.startswith("cuda") or torch.cuda.is_available():
        return
    from opo_theory.lm.training.config import PRESETS

    if PRESETS[cfg.preset].get("device", "cpu").startswith("cuda"):
        cpu = [name for name, values in PRESETS.items() if not values.get("device", "cpu").startswith("cuda")]
        raise ValueError(f"preset {cfg.preset!r} needs a GPU (device {cfg.device!r}) and CUDA is not available; "
                         f"on a CPU use --preset {' or '.join(cpu)}")
    raise ValueError(f"device {cfg.device!r} requested but CUDA is not available; use --set device=cpu")


def out_of_memory_is_one_line(run):
    """A CUDA out-of-memory error becomes one line naming the settings to lower (checkpoints stay resumable)."""
    @functools.wraps(run)
    def wrapped(args, *rest, **options) -> int:
        import torch

        try:
            return run(args, *rest, **options)
        except torch.OutOfMemoryError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "out of memory"
            raise ValueError(f"{first} -- lower prompts_per_step, group_size or max_new (--set), or pick a smaller "
                             "--preset/--model; --resume continues from the last checkpoint") from None
    return wrapped


def list_settings(objective: str | None, preset: str, settings: list[str], model: str | None) -> str:
    """Every ``--set`` key: its value under ``preset`` and the overrides, its range and its meaning; then the
    objective's hyperparameters (``objective.KEY``) when ``objective`` is given."""
    from opo_theory.lm.training.config import PRESETS, make_config, settable_fields
    from opo_theory.settings import show_value

    cfg = make_config(objective or "opo", preset, 0, settings, None, model)
    rows = []
    for f in settable_fields():
        value = getattr(cfg, f.name)
        changed = "" if value == f.default else f"  (default {show_value(f.default)})"
        rows.append((f.name, show_value(value) + changed, str(f.metadata.get("range", "")), f.metadata.get("help", "")))
    lines = [f"# train/compare settings under --preset {preset} ({', '.join(PRESETS)}); "
             "set with --set KEY=VALUE or a --config TOML file", *_columns(rows)]
    if objective is not None:
        from opo_theory.objectives.describe import hyperparameter_rows

        lines += ["", f"# objective {objective} (--set objective.KEY=VALUE; opo-theory objectives {objective})"]
        lines += _columns([(f"objective.{k}", show_value(cfg.objective_config.get(k, v)), t, h)
                           for k, v, t, h in hyperparameter_rows(objective)])
    return "\n".join(lines)


def _columns(rows) -> list[str]:
    kw = max(len(r[0]) for r in rows)
    vw = min(24, max(len(r[1]) for r in rows))
    rw = min(26, max(len(r[2]) for r in rows))
    return [f"{k:{kw}}  {v:{vw}}  {rng:{rw}}  {h}".rstrip() for k, v, rng, h in rows]


def rerun_command(args, resume: bool) -> str:
    """The command line that reruns this train/compare invocation (its options as parsed), with ``--resume``
    when ``resume``."""
    import shlex

    names = ("objective", "seed") if args.command == "train" else ("objectives", "seeds")
    words = ["opo-theory", args.command]
    for name in (*names, "preset", "model", "config", "steps", "out"):
        if getattr(args, name) is not None:
            words += [f"--{name}", str(getattr(args, name))]
    for group in args.settings or []:
        words += ["--set", *group]
    words += ["--quiet"] * bool(args.quiet) + ["--resume"] * resume
    return shlex.join(words)


def interrupt_is_one_line(run):
    """Ctrl-C ends train/compare with one line on stderr: the step reached, where a resume restarts, the command
    that resumes (exit 130; the checkpoints on disk are whole, being written atomically)."""
    @functools.wraps(run)
    def wrapped(args, *rest, **options) -> int:
        import sys

        from opo_theory.lm.progress import Interrupted
        from opo_theory.lm.training.run_dir import holds_run

        try:
            return run(args, *rest, **options)
        except KeyboardInterrupt as exc:
            resume = args.out is not None and holds_run(args.out)
            command = rerun_command(args, resume)
            stop = exc if isinstance(exc, Interrupted) else Interrupted(
                "start-up, before any training step", "nothing was trained; rerun with")
            print(stop.line(command), file=sys.stderr, flush=True)
            return 130
    return wrapped


def settings_or_listing(args, objective: str | None, *required: str) -> dict | None:
    """The run's resolved settings, or None once --list-settings has printed them; checks the required
    options and the model's files before any work."""
    settings = resolved_settings(args)
    if args.list_settings:
        print(list_settings(objective, args.preset, settings, args.model))
        return None
    require_present(args, *required)
    check_model_files(args.model)
    return settings


@interrupt_is_one_line
@out_of_memory_is_one_line
def run_train(args, engines=None) -> int:
    """`train` on the toolkit's trainer, or on one of ``engines`` ({--engine name: run(args, settings)}, given by
    the top-level CLI, which knows the integrations: this package imports none of them)."""
    settings = settings_or_listing(args, args.objective, "--objective", "--out")
    if settings is None:
        return 0
    if args.engine != "toolkit":
        return (engines or {})[args.engine](args, settings)
    from opo_theory.lm.experiments.compare import check_outputs
    from opo_theory.lm.training.config import make_config
    from opo_theory.lm.training.sft import task_pools, warm_start
    from opo_theory.lm.training.trainer import Trainer, prepare_run_dir

    cfg = make_config(args.objective.strip(), args.preset, args.seed, settings, args.steps, args.model)
    if cfg.report_to != "none":
        raise ValueError(f"report_to={cfg.report_to} applies to --engine trl; the toolkit engine's record is "
                         "metrics.jsonl (read by compare, figures and notebooks)")
    check_device(cfg)
    check_outputs(args.out, cfg)          # before the SFT warm-up: a bad path costs nothing and leaves nothing
    resumable = prepare_run_dir(cfg, args.out, args.resume, args.quiet)
    pools = task_pools(cfg)
    model, sft_info = warm_start(cfg, pools, args.quiet)       # the SFT policy (cached in sft_cache)
    trainer = Trainer(cfg, args.out, model, sft_info, pools, resumable, args.quiet)
    first_step = trainer.step
    path = trainer.run()
    print(f"wrote {path}" if trainer.step > first_step else f"unchanged: {path} (the run had already finished)")
    return 0


@interrupt_is_one_line
@out_of_memory_is_one_line
def run_compare(args) -> int:
    settings = settings_or_listing(args, None, "--out")
    if settings is None:
        return 0
    from opo_theory.lm.experiments.compare import (
        compare,
        markdown,
        parse_variant,
        split_variants,
        variant_config,
    )

    objectives = split_variants(args.objectives)      # NAME, a named variant or NAME(KEY=VALUE,...)
    if objectives:
        check_device(variant_config(parse_variant(objectives[0]), args.preset, 0, settings, args.steps, args.model))
    table = compare(objectives, args.seeds, args.preset, args.out, settings, args.steps,
                    args.resume, args.quiet, args.model)
    print(markdown(table))
    return 0
