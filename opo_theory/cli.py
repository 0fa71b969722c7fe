"""`opo-theory` command line: one sub-command module per capability, imported only when its command runs.

COMMANDS maps each command to the module that fills in its parser and to its one-line help. That module
has ``configure(name, parser)``, which adds the arguments and sets ``func`` (a callable taking the parsed
namespace and returning an exit code); it must import nothing heavy at module level (torch, numpy, sympy,
matplotlib and the implementations are imported inside ``func``), so ``--help``, ``--version`` and
argument errors cost milliseconds. To add a command: one line here and one branch in its module's
``configure``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from opo_theory import __version__

COMMANDS = {
    "claims": ("opo_theory.claims.cli", "check every claim of the paper and print the verdicts"),
    "bandit": ("opo_theory.bandit.cli", "exact toy dynamics on bandits (saturation, grid, ...)"),
    "train": ("opo_theory.cli", "SFT warm-up (cached) then RL with one registered objective"),
    "compare": ("opo_theory.lm.cli", "several objectives x seeds from the same SFT policy"),
    "audit": ("opo_theory.lm.audit_cli", "confidence-resolved gradient audit: K updates per objective from one policy"),
    "objectives": ("opo_theory.cli", "list the registered objectives: hyperparameters, defaults, formula"),
    "figures": ("opo_theory.figures.cli", "regenerate figures and tables (paper_repro/ -> figures/)"),
}


class UsageError(ValueError):
    """A command-line usage error (unknown option, missing or malformed argument)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``opo-theory: error: ...``, exit 2) instead of usage + error;
    sub-parsers inherit it. ``--help`` still prints the full help (exit 0)."""

    def error(self, message: str):
        raise UsageError(message)


def selected_command(argv: list[str]) -> str | None:
    """The command word of ``argv`` (the first argument that is not an option), None without one."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed, only the selected one (all, for ``argv=None``)
    gets its arguments, so building it imports only that command's light parser module."""
    parser = Parser(
        prog="opo-theory",
        description="Check claims about RLHF objectives (OPO and baselines), run toy dynamics, "
                    "train a compact LM, regenerate figures.",
    )
    parser.add_argument("--version", action="version", version=f"opo-theory {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = None if argv is None else selected_command(argv)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if argv is None or name == chosen:
            importlib.import_module(module_name).configure(name, p)
    return parser


def configure(name: str, p: argparse.ArgumentParser) -> None:
    """``train``: lm.cli's parser, run by the engine --engine names (here, above both lm and the integrations);
    ``objectives [NAME]``: the registry, described (opo_theory.objectives.describe)."""
    if name == "train":
        from opo_theory.lm.cli import configure as configure_lm

        configure_lm(name, p)
        p.set_defaults(func=run_train)
        return
    p.add_argument("name", nargs="?", metavar="NAME", help="one objective in full (default: a line for each)")
    p.set_defaults(func=run_objectives)


def run_train(args) -> int:
    """`train --engine toolkit|trl`: the toolkit's trainer, or TRL's GRPOTrainer with the registry objective."""
    from opo_theory.lm.cli import run_train as run_lm_train

    return run_lm_train(args, engines={"trl": run_trl})


def run_trl(args, settings) -> int:
    from opo_theory.integrations.trl_run import run_train_trl

    return run_train_trl(args, settings)


def run_objectives(args) -> int:
    from opo_theory.objectives.describe import describe, overview

    print(overview() if args.name is None else describe(args.name))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; bad input (checked before any output is written) gives exit 2 and one line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            args = build_parser(argv).parse_args(argv)
        except SystemExit as exc:  # --help or --version printed its text
            return exc.code if isinstance(exc.code, int) else 0
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: one clear line, no traceback
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"opo-theory: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
