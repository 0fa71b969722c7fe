"""`opo-theory figures`: list or regenerate the paper's figures and tables (matplotlib imported on run)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def configure(name: str, p) -> None:
    p.add_argument("names", nargs="*", metavar="NAME", help="artifacts to build (default: all)")
    p.add_argument("--list", action="store_true", help="list the artifacts and exit")
    p.add_argument("--out", metavar="DIR", help="write the artifacts to DIR instead of figures/ (the report "
                                                "then writes DIR/REPORT.md instead of REPORT.md)")
    p.add_argument("--rerun", action="store_true",
                   help="recompute LM runs instead of reading the committed logs in figures/runs/")
    p.add_argument("--runs", metavar="DIR", help="draw the LM figures and tables from your own `compare --out DIR` "
                                                 "instead of the committed logs (default output DIR/figures; "
                                                 "without NAMEs, every artifact that reads LM runs but the report)")
    p.add_argument("--audit", metavar="DIR", help="draw the audit figures from your own `audit --out DIR` instead "
                                                  "of the committed audits (default output DIR/figures; without "
                                                  "NAMEs, every artifact that reads an audit and fits it)")
    p.set_defaults(func=run)


def run(args) -> int:
    from opo_theory.figures import catalogue
    from opo_theory.figures.style import FIGURES_DIR
    from opo_theory.validation import require_output_dir, show

    names = catalogue.artifact_names()
    if args.list:
        for name in names:
            print(f"{name:18s} {catalogue.describe(name)}")
        return 0
    for name in args.names:  # validate every name and the output directory before any work starts
        if name not in names:
            raise ValueError(f"unknown figure {show(name)}; allowed: {', '.join(names)}")
    runs = lm_runs(args, names) if args.runs is not None else None
    audit = audit_artifacts(args, names) if args.audit is not None else None
    source = runs or audit
    pool = names if source is None else source[1]
    selected = [n for n in names if n in args.names] if args.names else pool    # catalogue order: report last
    default_out = FIGURES_DIR if source is None else source[0] / "figures"
    out = default_out if args.out is None else Path(require_output_dir("--out", args.out))
    for name in selected:
        missing = [r for r in catalogue.requires(name) if r not in selected and not (out / f"{r}.json").exists()]
        if missing:
            raise ValueError(f"figure {name!r} reads {', '.join(missing)}, which {out} does not hold; "
                             f"build them too (e.g. opo-theory figures {' '.join(missing)} {name} --out {out})")
    from opo_theory.figures.audit_source import reading_audit
    from opo_theory.figures.source import reading_runs
    from opo_theory.figures.style import take_empty_panels

    take_empty_panels()                 # count only what this command draws
    print(f"figures: {len(selected)} artifact(s) into {out}" + ("" if runs is None else f", LM runs read from {runs[0]}")
          + ("" if audit is None else f", audit read from {audit[0]}"), file=sys.stderr, flush=True)
    from opo_theory.bandit.progress import reporting

    with reading_runs(None if runs is None else runs[0]), reading_audit(None if audit is None else audit[0]), \
            reporting():                # long bandit experiments (grid-alpha-mu) say which run they are on
        for i, name in enumerate(selected, 1):
            start = time.perf_counter()
            if sys.stderr.isatty():     # on a terminal: which figure is being drawn (its time follows on stdout)
                print(f"[{i}/{len(selected)}] {name}: drawing ...", file=sys.stderr, flush=True)
            try:
                paths = catalogue.build(name, rerun=args.rerun, out=out)
            except KeyboardInterrupt as exc:
                import shlex

                where = getattr(exc, "where", f"{name} ({i} of {len(selected)})")
                again = ["opo-theory", "figures", *args.names, *(["--out", args.out] if args.out else []),
                         *(["--runs", args.runs] if args.runs else []), *(["--audit", args.audit] if args.audit else []),
                         *(["--rerun"] if args.rerun else [])]
                print(f"opo-theory: interrupted at {where}; "
                      + ("the LM runs done so far are kept, " if args.rerun else "")
                      + f"the same command continues: {shlex.join(again)}", file=sys.stderr, flush=True)
                return 130
            print(f"[{i}/{len(selected)}] {name}: {', '.join(p.name for p in paths)} "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)
            sys.stdout.flush()
    print(summary_line(selected, out, take_empty_panels()), file=sys.stderr, flush=True)
    return 0


def summary_line(selected: list[str], out: Path, empty: dict[str, tuple[list[str], int]]) -> str:
    """The last line of a build: how many artifacts were drawn in full, and each figure with panels that show
    no data (which panels), so an empty axis is never reported as a success."""
    line = f"figures: {len(selected) - len(empty)} of {len(selected)} artifact(s) drawn in full into {out}"
    if not empty:
        return line
    parts = [f"{name} ({len(panels)} of {shown} panel(s): {'; '.join(panels)})"
             for name, (panels, shown) in empty.items()]
    return (line + f"; {len(empty)} with panels that show no data (metric not logged by these runs, or too few "
            f"steps): " + ", ".join(parts))


def lm_runs(args, names: list[str]) -> tuple[Path, list[str]]:
    """``--runs DIR``: the compare directory and the artifacts drawn from it (those reading LM runs, but the
    report, which describes the committed runs); ValueError for --rerun or a NAME that does not read them."""
    from opo_theory.figures import catalogue
    from opo_theory.figures.source import reads_runs, require_compare_dir

    if args.rerun:
        raise ValueError("--runs and --rerun exclude each other: --runs draws DIR's logs, --rerun trains new ones")
    directory = require_compare_dir(args.runs)
    drawn = [n for n in names if n != catalogue.REPORT and reads_runs(catalogue.load_artifact(n))]
    other = [n for n in args.names if n not in drawn]
    if other:
        raise ValueError(f"--runs: {', '.join(other)} do(es) not draw from LM runs; with --runs name only "
                         f"{', '.join(drawn)}")
    return directory, drawn


def audit_artifacts(args, names: list[str]) -> tuple[Path, list[str]]:
    """``--audit DIR``: the audit directory and the artifacts drawn from it (those reading an audit record whose
    objectives it holds; the others are named on stderr); ValueError for --rerun, --runs, or a NAME that does
    not read an audit or needs an objective the audit lacks."""
    from opo_theory.figures import catalogue
    from opo_theory.figures.audit_source import (
        missing_objectives,
        read_audit,
        reads_audit,
        require_audit_dir,
    )

    if args.rerun or args.runs is not None:
        raise ValueError(f"--audit excludes {'--rerun' if args.rerun else '--runs'}: --audit draws DIR's audit only "
                         "(draw a compare output with a separate `figures --runs DIR`)")
    directory = require_audit_dir(args.audit)
    record = read_audit(directory)
    readers = [n for n in names if n != catalogue.REPORT and reads_audit(catalogue.load_artifact(n))]
    other = [n for n in args.names if n not in readers]
    if other:
        raise ValueError(f"--audit: {', '.join(other)} do(es) not draw from an audit; with --audit name only "
                         f"{', '.join(readers)}")
    lacking = {n: missing_objectives(catalogue.load_artifact(n), record) for n in readers}
    lacking = {n: m for n, m in lacking.items() if m}
    audited = ", ".join(record["summary"])
    named = [n for n in args.names if n in lacking]
    if named:
        raise ValueError(f"--audit: {named[0]} compares with {', '.join(lacking[named[0]])}, which {directory} did "
                         f"not audit (it holds {audited}); rerun `opo-theory audit` with --objectives including it")
    for name, m in ({} if args.names else lacking).items():
        print(f"figures: {name} skipped: it compares with {', '.join(m)}, which {directory} did not audit "
              f"(it holds {audited})", file=sys.stderr, flush=True)
    return directory, [n for n in readers if n not in lacking]
