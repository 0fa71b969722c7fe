"""Benchmark: the alpha x mu grid vectorized (one batch) vs a plain per-run Python loop.

9 configs x 64 seeds x 1000 exact-gradient steps (200 outer x 5 inner) on a 100-armed bandit.
The loop runs the same registry math one run at a time; it is timed on a subset and extrapolated.
Usage: python benchmarks/bench_bandit_grid.py [--loop-runs 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from opo_theory.bandit.dynamics import logit_outer_loop
from opo_theory.bandit.problems import KArmedBandit

ALPHAS, MUS, SEEDS, ARMS, OUTER, INNER, ETA = (0.3, 0.6, 0.9), (0.5, 1.0, 2.0), 64, 100, 200, 5, 0.4


def grid_hyper():
    alpha = torch.tensor([a for a in ALPHAS for _ in MUS for _ in range(SEEDS)], dtype=torch.float64)
    mu = torch.tensor([m for _ in ALPHAS for m in MUS for _ in range(SEEDS)], dtype=torch.float64)
    return alpha, mu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop-runs", type=int, default=6, help="runs timed in the per-run loop")
    args = ap.parse_args()
    torch.set_num_threads(2)
    means = KArmedBandit.make(SEEDS, ARMS, seed=0).means.double().repeat(len(ALPHAS) * len(MUS), 1)
    alpha, mu = grid_hyper()
    runs = means.shape[0]
    start = time.perf_counter()
    vec = logit_outer_loop(means, "opo", {"alpha": alpha, "mu": mu}, ETA, OUTER, INNER)
    t_vec = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(args.loop_runs):
        one = logit_outer_loop(means[i:i + 1], "opo", {"alpha": float(alpha[i]), "mu": float(mu[i])},
                               ETA, OUTER, INNER)
        assert torch.allclose(one.reward[-1], vec.reward[-1, i:i + 1], atol=1e-9)
    t_loop = (time.perf_counter() - start) / args.loop_runs * runs
    print(f"grid {len(ALPHAS)}x{len(MUS)} configs x {SEEDS} seeds x {OUTER * INNER} steps, {ARMS} arms")
    print(f"vectorized: {t_vec:.2f} s")
    print(f"per-run loop: {t_loop:.1f} s (extrapolated from {args.loop_runs} of {runs} runs)")
    print(f"speed-up: {t_loop / t_vec:.0f}x")


if __name__ == "__main__":
    main()
