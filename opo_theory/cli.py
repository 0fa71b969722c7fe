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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"opo-theory: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
