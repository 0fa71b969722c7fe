"""What the committed real-model runs (figures/runs/smollm2-cpu, `compare --preset smollm2-cpu`) say: per
objective the sampled accuracy over the steps and the greedy val accuracy before RL and at the last evaluation,
OPO paired against each baseline over seeds, and the sampled tokens' confidence beside the char GPT's."""

from __future__ import annotations

from pathlib import Path

from opo_theory.stats import holm, interval, outcome, paired

HIGH = {"p>=0.9": ("0.9-0.99", "0.99-0.999", "ge0.999"), "p>=0.999": ("ge0.999",)}


def confidence_shares(row: dict) -> dict[str, float]:
    """Share of a step's sampled response tokens whose p_old (the sampling policy's probability) is >= 0.9 and
    >= 0.999, from the trainer's per-bin shares (conf/<bin>/share)."""
    return {name: sum(row[f"conf/{b}/share"] for b in bins) for name, bins in HIGH.items()}


def start_confidence(runs: list[list[dict]]) -> dict[str, dict]:
    """Over seeds: the confidence shares of step 0's rollouts (sampled from the policy before any update)."""
    shares = [confidence_shares(rows[0]) for rows in runs if rows]
    return {name: interval([s[name] for s in shares], "fraction") for name in HIGH}


def mean_accuracy(rows: list[dict]) -> float:
    """Mean sampled accuracy over a run's steps."""
    return sum(r["accuracy"] for r in rows) / len(rows)


def last_val(rows: list[dict]) -> float:
    """Greedy val accuracy at a run's last evaluation."""
    return [r["val/accuracy"] for r in rows if r.get("val/accuracy") is not None][-1]


def real_model_summary(directory: Path) -> dict:
    """Per objective: sampled accuracy over the steps, greedy val accuracy before RL and at the end and its paired
    change; OPO minus each baseline (paired over seeds, Holm over every baseline x measure) on both; the start
    policy's token confidence."""
    from opo_theory.lm.experiments.comparison import load, pre_rl, seed_config

    runs, before = load(directory), pre_rl(directory)
    per = {}
    for name, seeds in runs.items():
        start = [b.get("val/accuracy") for b in before[name]]
        end = [last_val(rows) for rows in seeds]
        per[name] = {"sampled": interval([mean_accuracy(rows) for rows in seeds], "fraction"),
                     "val_end": interval(end, "fraction"), "val_start": interval(start, "fraction"),
                     "val_change": paired(end, start).to_json(), "steps": min(len(rows) for rows in seeds)}
    measures = {"sampled": mean_accuracy, "val_end": last_val}
    tests = {(name, k): paired([f(r) for r in runs["opo"]], [f(r) for r in runs[name]])
             for name in runs if name != "opo" and "opo" in runs for k, f in measures.items()}
    adjusted = dict(zip(tests, holm([t.p for t in tests.values()]), strict=True))
    versus: dict = {}
    for (name, k), t in tests.items():
        versus.setdefault(name, {})[k] = {**t.to_json(), "p_holm": adjusted[name, k],
                                          "outcome": outcome(t, adjusted[name, k]), "text": t.text()}
    first = next(iter(runs))
    step_s = sorted(r["time/step_s"] for seeds in runs.values() for rows in seeds for r in rows)
    return {"objectives": per, "opo_versus": versus, "confidence": start_confidence(runs[first]),
            "config": seed_config(directory, first)["config"], "seeds": len(runs[first]),
            "step_s": {"median": step_s[len(step_s) // 2], "min": step_s[0], "max": step_s[-1]}}
