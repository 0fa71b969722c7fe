"""`opo-theory bandit <experiment>`: run one toy experiment, print a summary or JSON."""

from __future__ import annotations

import time

from opo_theory.bandit.experiments import EXPERIMENTS
from opo_theory.io import dumps_json, write_json_atomic
from opo_theory.settings import function_defaults, parse_overrides
from opo_theory.validation import require_output_file


def register(sub) -> None:
    p = sub.add_parser("bandit", help="exact toy dynamics on bandits (saturation, grid, ...)")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--out", help="also write the JSON result to this file (atomically)")
    p.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                   help="override an experiment parameter (repeatable); see --list-settings")
    p.add_argument("--list-settings", action="store_true", help="print the parameters and defaults")
    p.set_defaults(func=run)


def run(args) -> int:
    fn = EXPERIMENTS[args.experiment]
    defaults = function_defaults(fn)
    if args.list_settings:
        for k, v in defaults.items():
            print(f"{k} = {v!r}")
        return 0
    kwargs = parse_overrides(args.settings, defaults, f"bandit {args.experiment}")
    if args.out is not None:     # checked before the experiment runs, so a bad path costs nothing
        require_output_file("--out", args.out)
    start = time.perf_counter()
    result = fn(**kwargs)
    result["seconds"] = round(time.perf_counter() - start, 3)
    if args.out:
        write_json_atomic(args.out, result)
    if args.json:
        print(dumps_json(result))
    else:
        summary = {k: v for k, v in result.items() if k not in ("curves", "p", "rows", "table",
                                                                 "reward_curves", "param_rate_by_outer")}
        print(dumps_json(summary, indent=1)[:6000])
    return 0
