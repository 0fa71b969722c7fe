"""Benchmark the diagnostics on a CPU batch of 64 prompts x 6 responses x 256 tokens.

A linear 'policy head' (hidden features -> vocab logits) supplies parameters to differentiate.
Times: loss + backward alone; + gradient_metrics without the split; + the drive/regularizer split
(one extra backward); + batch_metrics. Usage: python benchmarks/bench_diagnostics.py [--repeats 5]
"""

from __future__ import annotations

import argparse

import torch
from timing import median_time

from opo_theory.diagnostics import batch_metrics, gradient_metrics
from opo_theory.objectives import PolicyBatch, get

PROMPTS, GROUP, TOKENS, HIDDEN, VOCAB = 64, 6, 256, 64, 32


def setup():
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(HIDDEN, VOCAB)
    feats = torch.randn(PROMPTS * GROUP, TOKENS, HIDDEN, generator=g)
    tokens = torch.randint(VOCAB, (PROMPTS * GROUP, TOKENS), generator=g)
    with torch.no_grad():
        logp_old = head(feats).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1) + 0.01
    rewards = (torch.rand(PROMPTS * GROUP, generator=g) < 0.5).float()
    return head, feats, tokens, logp_old, rewards


def make_batch(head, feats, tokens, logp_old, rewards):
    logp = head(feats).log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    return PolicyBatch(logp=logp, logp_old=logp_old, mask=torch.ones_like(logp),
                       group=torch.arange(len(rewards)) // GROUP, rewards=rewards)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    head, *data = setup()
    spec = get("opo")
    cfg = spec.make_config()

    def plain():
        head.zero_grad()
        loss, _ = spec(make_batch(head, *data), cfg)
        loss.backward()

    def with_metrics(split):
        def run():
            head.zero_grad()
            loss, parts = spec(make_batch(head, *data), cfg)
            gradient_metrics(loss, parts, head.parameters(), split=split)
        return run

    def everything():
        head.zero_grad()
        batch = make_batch(head, *data)
        loss, parts = spec(batch, cfg)
        gradient_metrics(loss, parts, head.parameters(), split=True)
        batch_metrics(batch, "opo", cfg)

    base = median_time(plain, args.repeats)
    print(f"batch {PROMPTS} prompts x {GROUP} responses x {TOKENS} tokens, objective opo, torch threads {torch.get_num_threads()}")
    print(f"loss + backward:                      {base * 1e3:7.1f} ms")
    for name, fn in (("+ grad/norm (no split)", with_metrics(False)), ("+ drive/reg split", with_metrics(True)),
                     ("+ split + batch_metrics", everything)):
        t = median_time(fn, args.repeats)
        print(f"{name:38s}{t * 1e3:7.1f} ms  (overhead {100 * (t / base - 1):+.0f}%)")


if __name__ == "__main__":
    main()
