"""`opo-theory figures`: list or regenerate the paper's figures and tables."""

from __future__ import annotations

import sys
import time

from opo_theory.figures import catalogue


def register(sub) -> None:
    p = sub.add_parser("figures", help="regenerate figures and tables (paper_repro/ -> figures/)")
    p.add_argument("names", nargs="*", metavar="NAME", help="artifacts to build (default: all)")
    p.add_argument("--list", action="store_true", help="list the artifacts and exit")
    p.add_argument("--rerun", action="store_true",
                   help="recompute LM runs instead of reading the committed logs in figures/runs/")
    p.set_defaults(func=run)


def run(args) -> int:
    names = catalogue.artifact_names()
    if args.list:
        for name in names:
            print(f"{name:18s} {catalogue.describe(name)}")
        return 0
    selected = args.names or names
    for name in selected:  # validate every name before any work starts
        if name not in names:
            raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(names)}")
    for i, name in enumerate(selected, 1):
        start = time.perf_counter()
        paths = catalogue.build(name, rerun=args.rerun)
        print(f"[{i}/{len(selected)}] {name}: {', '.join(p.name for p in paths)} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
        sys.stdout.flush()
    return 0
