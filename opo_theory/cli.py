"""`opo-theory` command line: one sub-command module per capability.

Each module listed in SUBCOMMANDS exposes ``register(subparsers)`` which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = (
    "opo_theory.claims.cli",      # claims
    "opo_theory.bandit.cli",      # bandit <experiment>
    "opo_theory.lm.cli",          # train, compare
    "opo_theory.figures.cli",     # figures
)


class UsageError(ValueError):
    """A command-line usage error (unknown option, missing or malformed argument)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (``opo-theory: error: ...``, exit 2) instead of usage + error;
    sub-parsers inherit it. ``--help`` still prints the full help (exit 0)."""

    def error(self, message: str):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="opo-theory",
        description="Check claims about RLHF objectives (OPO and baselines), run toy dynamics, "
                    "train a compact LM, regenerate figures.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; bad input (checked before any output is written) gives exit 2 and one line."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help printed its text
            return exc.code if isinstance(exc.code, int) else 0
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: one clear line, no traceback
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"opo-theory: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
