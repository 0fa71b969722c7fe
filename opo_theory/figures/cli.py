"""`opo-theory figures`: list or regenerate the paper's figures and tables."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from opo_theory.figures import catalogue
from opo_theory.figures.style import FIGURES_DIR
from opo_theory.validation import require_output_dir, show


def register(sub) -> None:
    p = sub.add_parser("figures", help="regenerate figures and tables (paper_repro/ -> figures/)")
    p.add_argument("names", nargs="*", metavar="NAME", help="artifacts to build (default: all)")
    p.add_argument("--list", action="store_true", help="list the artifacts and exit")
    p.add_argument("--out", metavar="DIR", help="write the artifacts to DIR instead of figures/ (the report "
                                                "then writes DIR/REPORT.md instead of REPORT.md)")
    p.add_argument("--rerun", action="store_true",
                   help="recompute LM runs instead of reading the committed logs in figures/runs/")
    p.set_defaults(func=run)


def run(args) -> int:
    names = catalogue.artifact_names()
    if args.list:
        for name in names:
            print(f"{name:18s} {catalogue.describe(name)}")
        return 0
    for name in args.names:  # validate every name and the output directory before any work starts
        if name not in names:
            raise ValueError(f"unknown figure {show(name)}; allowed: {', '.join(names)}")
    selected = [n for n in names if n in args.names] if args.names else names    # catalogue order: report last
    out = FIGURES_DIR if args.out is None else Path(require_output_dir("--out", args.out))
    for name in selected:
        missing = [r for r in catalogue.requires(name) if r not in selected and not (out / f"{r}.json").exists()]
        if missing:
            raise ValueError(f"figure {name!r} reads {', '.join(missing)}, which {out} does not hold; "
                             f"build them too (e.g. opo-theory figures {' '.join(missing)} {name} --out {out})")
    for i, name in enumerate(selected, 1):
        start = time.perf_counter()
        paths = catalogue.build(name, rerun=args.rerun, out=out)
        print(f"[{i}/{len(selected)}] {name}: {', '.join(p.name for p in paths)} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
        sys.stdout.flush()
    return 0
