"""`opo-theory claims`: run the claim checks and print a table, JSON or markdown."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

from opo_theory.claims.catalogue import check_all, get_claim
from opo_theory.io import dumps_json

COLUMNS = ("id", "source", "statement", "verdict", "detail")


def register(sub) -> None:
    p = sub.add_parser("claims", help="check every claim of the paper and print the verdicts")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON list of {id, source, statement, verdict, detail, numbers}")
    fmt.add_argument("--markdown", action="store_true", help="markdown table (id, source, verdict, detail)")
    p.add_argument("--id", dest="ids", action="append", metavar="ID", help="run only this claim (repeatable)")
    p.set_defaults(func=run)


def run(args) -> int:
    for claim_id in args.ids or []:
        get_claim(claim_id)          # unknown id -> ValueError before any check runs
    try:
        results = check_all(args.ids)
    except Exception as exc:  # a check that errors is a defect, not a verdict
        print(f"opo-theory claims: a check raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(dumps_json([dataclasses.asdict(r) for r in results], indent=2))
    elif args.markdown:
        print("| id | source | verdict | detail |\n|---|---|---|---|")
        for r in results:
            print(f"| `{r.id}` | {r.source} | **{r.verdict}** | {r.detail.replace('|', '/')} |")
    else:
        print_table(results)
    return 0


def print_table(results) -> None:
    counts = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
        lines = textwrap.wrap(r.detail, 88) or [""]
        print(f"{r.id:22s} {r.verdict:12s} {lines[0]}")
        for line in lines[1:]:
            print(f"{'':35s} {line}")
    print("\n" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + f" ({len(results)} claims)")
