"""`opo-theory claims`: run the claim checks and print a table, JSON or markdown.

Only the selected claims are checked (``--id``), one at a time as they are printed; the catalogue and its
check modules (sympy, numpy) are imported when the command runs, not when its parser is built.
"""

from __future__ import annotations

import shutil
import sys
import textwrap

VERDICT_WIDTH = 11     # longest verdict: 'conditional'


def configure(name: str, p) -> None:
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON list of {id, source, statement, verdict, detail, numbers}")
    fmt.add_argument("--markdown", action="store_true", help="markdown table (id, whose, source, verdict, detail)")
    p.add_argument("--id", dest="ids", action="extend", nargs="+", metavar="ID",
                   help="run only these claims (--id a b, or --id repeated)")
    p.set_defaults(func=run)


def run(args) -> int:
    import dataclasses

    from opo_theory.claims.index import catalogue, get_claim
    from opo_theory.io import dumps_json

    claims = [get_claim(i) for i in (args.ids or catalogue())]     # unknown id -> ValueError before any check
    try:
        results = [checked(c, k, len(claims)) for k, c in enumerate(claims, 1)]
    except Exception as exc:  # a check that errors is a defect, not a verdict
        print(f"opo-theory claims: a check raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(dumps_json([dataclasses.asdict(r) for r in results], indent=2))
    elif args.markdown:
        print(markdown_table(results), end="")
    else:
        print(table(results, shutil.get_terminal_size((100, 24)).columns))
    return 0


def checked(claim, k: int, n: int):
    """``claim.run()``, with 'checking k/n: id' on an interactive stderr (the whole catalogue takes seconds)."""
    if n > 1 and sys.stderr.isatty():
        print(f"\rchecking {k}/{n}: {claim.id:40.40}", end="" if k < n else "\n", file=sys.stderr, flush=True)
    return claim.run()


def markdown_table(results) -> str:
    """One row per claim: id, whose statement it is (origin), source, verdict, detail."""
    rows = ["| id | whose | source | verdict | detail |", "|---|---|---|---|---|"]
    for r in results:
        detail = r.detail.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{r.id}` | {r.origin} | {r.source} | **{r.verdict}** | {detail} |")
    return "\n".join(rows) + "\n"


def table(results, width: int = 100) -> str:
    """A header, one row per claim (id, source, verdict, then what the claim states and what the check found,
    wrapped to ``width`` columns), and the counts."""
    id_w = max([len("claim")] + [len(r.id) for r in results])
    src_w = min(18, max([len("source")] + [len(r.source) for r in results]))
    indent = id_w + src_w + VERDICT_WIDTH + 3
    detail_w = max(20, min(width, 120) - indent - 1)
    lines = [f"{'claim':{id_w}} {'source':{src_w}} {'verdict':{VERDICT_WIDTH}} detail",
             f"{'-' * id_w} {'-' * src_w} {'-' * VERDICT_WIDTH} {'-' * min(detail_w, 40)}"]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
        source = textwrap.shorten(r.source, src_w, placeholder="~")
        statement = getattr(r, "statement", "")
        detail = (textwrap.wrap(f"states: {statement}", detail_w) if statement else []) + (
            textwrap.wrap(f"found: {r.detail}" if statement else r.detail, detail_w) or [""])
        lines.append(f"{r.id:{id_w}} {source:{src_w}} {r.verdict:{VERDICT_WIDTH}} {detail[0]}")
        lines += [f"{'':{indent}}{line}" for line in detail[1:]]
    lines.append("\n" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + f" ({len(results)} claims)")
    return "\n".join(lines)
