"""Start-up cost of the command line: interleaved median wall times of whole processes.

Each round runs every command once, in turn (so load on a shared machine hits them alike); the table
gives the median over rounds and its ratio to ``python -c "import torch"``. The target: ``--help``,
``--version`` and argument errors well under half the torch import; ``claims --id positivity`` about
the cost of that one claim, far below the whole catalogue.

    python benchmarks/bench_startup.py [--rounds N] [--no-full]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CLI = [sys.executable, "-m", "opo_theory"]
COMMANDS = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "opo-theory --help": [*CLI, "--help"],
    "opo-theory --version": [*CLI, "--version"],
    "opo-theory --bogus (bad flag)": [*CLI, "--bogus"],
    "opo-theory train --bogus (bad flag)": [*CLI, "train", "--bogus"],
    "opo-theory bandit nope (bad experiment)": [*CLI, "bandit", "nope"],
    "opo-theory claims --bogus (bad flag)": [*CLI, "claims", "--bogus"],
    "positivity check alone (package + check)": [sys.executable, "-c", "from opo_theory.claims.bounds "
                                                 "import positivity; positivity()"],
    "opo-theory claims --id positivity": [*CLI, "claims", "--id", "positivity"],
    "opo-theory claims (all)": [*CLI, "claims"],
}


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-full", action="store_true", help="skip the whole catalogue (the slowest command)")
    args = ap.parse_args()
    commands = {k: v for k, v in COMMANDS.items() if not (args.no_full and k == "opo-theory claims (all)")}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(args.rounds):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    torch_s = statistics.median(times['python -c "import torch"'])
    print(f"{'command':44s} {'median s':>9s} {'min s':>7s} {'x torch':>8s}   ({args.rounds} interleaved rounds)")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:44s} {med:9.3f} {min(ts):7.3f} {med / torch_s:8.2f}")


if __name__ == "__main__":
    main()
