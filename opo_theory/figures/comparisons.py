"""REPORT's comparisons across the committed run directories: OPO against each baseline from two SFT starts, each
method at its best learning rate, the released OPO runs' DAPO/GSPO settings against the registry's, and the
paper's entropy mechanism (sequence- vs token-level supervision). Every verdict goes through stats' one rule
(stats.family / stats.versus / stats.judge), so the thresholds live in opo_theory.stats only.

``python -m opo_theory.figures.comparisons --root DIR`` prints the sections for the run directories under DIR
(default figures/runs), e.g. a quick regeneration's."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from opo_theory.figures.runs import LR_DIR, RUNS_DIR, SFT1_DIR, load, seed_config, summary_of
from opo_theory.stats import POWER, WINDOWS, family, family_rule, judge, window_mean

MEASURES = (("reward/mean", "training reward"), ("val/accuracy", "greedy val accuracy"))
CORE = ("opo", "grpo", "dapo", "gspo")                       # the learning-rate sweep's methods
RELEASED = (("dapo-released", "dapo"), ("gspo-released", "gspo"))   # (the released OPO runs' setting, registry's)
SELECT_KEY, SELECT_WINDOW = "reward/mean", 0.2               # best lr: mean reward over the last 20% of the steps
ENTROPY = "entropy/mean"

Runs = dict[str, list[list[dict]]]


def pooled(*runs: Runs) -> Runs:
    """The objectives present in every one of ``runs``, their seeds concatenated in order (pair k stays pair k)."""
    names = [o for o in runs[0] if all(o in r for r in runs[1:])]
    return {o: [rows for r in runs for rows in r[o]] for o in names}


def opo_versus(runs: Runs, key: str, what: str) -> dict:
    """OPO against each baseline on ``key`` over the WINDOWS (opo_theory.lm.experiments.compare.verdict_from_runs)."""
    from opo_theory.lm.experiments.compare import verdict_from_runs

    return verdict_from_runs(runs, key, what)


def sft_starts(starts: dict[str, Runs]) -> dict:
    """Per measure: OPO vs each baseline from each SFT start and pooled over the starts (all pairs); per baseline
    the outcomes by start, whether they flip (two starts decide differently; 'undetermined' decides nothing), and
    stats.judge over the starts ('conditional' = from one start only: the verdict is conditional on the warm-up)."""
    out, both = {}, pooled(*starts.values())
    for key, what in MEASURES:
        per = {s: opo_versus(r, key, f"{what}, {s}") for s, r in starts.items()}
        pool = opo_versus(both, key, f"{what}, pooled over the {len(starts)} starts")
        baselines = {}
        for b, v in pool["baselines"].items():
            by_start = {s: per[s]["baselines"][b]["outcome"] for s in starts if b in per[s]["baselines"]}
            verdict, detail = judge(by_start)
            decided = {o for o in by_start.values() if o != "undetermined"}     # too few seeds is no flip
            baselines[b] = {"by_start": by_start, "pooled": v["outcome"], "flips": len(decided) > 1,
                            "verdict": verdict, "detail": detail}
        out[key] = {"what": what, "per_start": per, "pooled": pool, "baselines": baselines,
                    "pairs": len(both.get("opo", [])),
                    "flipped": [b for b, x in baselines.items() if x["flips"]]}
    return out


def lr_table(directories: list[Path], methods=CORE) -> dict[str, dict[float, Runs]]:
    """{method: {lr: seed rows}} from ``directories``: a label counts when it is one of ``methods`` at the
    registry's settings or changes only its learning rate (lr read from the run's config.json); a method's runs
    are cut to the seeds every directory has, so seed k is paired across learning rates and methods."""
    from opo_theory.lm.experiments.compare import parse_variant

    n = min(summary_of(d)["seeds"] for d in directories)
    out: dict[str, dict[float, list]] = {}
    for d in directories:
        for label, seed_rows in load(d).items():
            v = parse_variant(label)
            if v.objective not in methods or not all(s.startswith("lr=") for s in v.settings):
                continue
            lr = float(seed_config(d, label)["config"]["lr"])
            if lr in out.setdefault(v.objective, {}):
                raise ValueError(f"{label} in {d}: {v.objective} at lr {lr:g} is in two run directories")
            out[v.objective][lr] = seed_rows[:n]
    return out


def learning_rates(table: dict[str, dict[float, list]], main_lr: float) -> dict:
    """Each method's best learning rate (largest mean over seeds of SELECT_KEY in the last SELECT_WINDOW), then OPO
    at its best against each baseline at its best, and all at ``main_lr`` on the same seeds (stats' rule)."""
    if "opo" not in table:
        raise ValueError(f"no opo runs among the learning-rate runs (methods found: {', '.join(table) or 'none'})")
    means = {o: {lr: float(np.mean([window_mean(r, SELECT_KEY, SELECT_WINDOW) for r in rows]))
                 for lr, rows in sorted(by_lr.items())} for o, by_lr in table.items()}
    best = {o: max(m, key=m.get) for o, m in means.items()}
    at_best = {o: table[o][best[o]] for o in table}
    at_main = {o: table[o][main_lr] for o in table if main_lr in table[o]}
    seeds = min(len(rows) for rows in at_best.values())
    return {"means": means, "best": best, "main_lr": main_lr, "seeds": seeds,
            "at_best": {key: opo_versus(at_best, key, f"{what}, each at its best learning rate")
                        for key, what in MEASURES},
            "at_main": {key: opo_versus(at_main, key, f"{what}, all at lr {main_lr:g}") for key, what in MEASURES}}


def by_windows(runs: Runs, key: str) -> dict[float, dict[str, list[float]]]:
    return {w: {o: [window_mean(r, key, w) for r in seed_rows] for o, seed_rows in runs.items()} for w in WINDOWS}


def released(runs: Runs, pairs=RELEASED) -> dict:
    """Per measure: the released OPO runs' setting minus the registry's (paired, two-sided, Holm over the pairs),
    and whether OPO's outcome against the baseline changes when the baseline takes the released setting."""
    pairs = [(a, b) for a, b in pairs if a in runs and b in runs]
    if not pairs:
        return {"pairs": []}
    out = {"pairs": pairs}
    for key, what in MEASURES:
        fam = family(by_windows({o: runs[o] for o in {x for p in pairs for x in p}}, key), pairs)
        main = opo_versus(runs, key, what)["baselines"]
        opo = {a: {"released": main[a]["outcome"], "registry": main[b]["outcome"],
                   "changes": main[a]["outcome"] != main[b]["outcome"], "text": [main[a]["text"], main[b]["text"]]}
               for a, b in pairs if a in main and b in main}
        out[key] = {"what": what, "difference": {a: fam[(a, b)] for a, b in pairs}, "opo": opo,
                    "rule": family_rule("released setting - registry's", len(pairs), WINDOWS)}
    return out


def level(label: str) -> str | None:
    """'sequence' or 'token' for a registry objective at its defaults (the registry's kind), None otherwise."""
    from opo_theory.lm.experiments.compare import parse_variant
    from opo_theory.objectives import get

    v = parse_variant(label)
    return None if v.settings else get(v.objective).kind


def entropy_mechanism(runs: Runs) -> dict:
    """The paper attributes OPO's highest entropy to sequence-level rather than token-level supervision. If that is
    the mechanism, every sequence-level objective (registry defaults) ends with more entropy than every
    token-level one: paired tests of each (sequence, token) pair, Holm over the family, stats.judge over the pairs;
    OPO against the other sequence-level objectives should then show no detectable difference."""
    seq = [o for o in runs if level(o) == "sequence"]
    tok = [o for o in runs if level(o) == "token"]
    pairs = [(s, t) for s in seq for t in tok]
    if not pairs:
        return {"verdict": "undetermined", "detail": "no sequence-level and token-level objectives to compare",
                "pairs": {}, "sequence": seq, "token": tok, "opo_vs_sequence": {}}
    windows = by_windows({o: runs[o] for o in seq + tok}, ENTROPY)
    fam = family(windows, pairs)
    verdict, detail = judge({f"{s} - {t}": fam[(s, t)]["outcome"] for s, t in pairs})
    others = [("opo", s) for s in seq if s != "opo"] if "opo" in seq else []
    return {"verdict": verdict, "detail": detail, "pairs": {f"{s} - {t}": v for (s, t), v in fam.items()},
            "sequence": seq, "token": tok, "rule": family_rule("sequence- minus token-level", len(pairs), WINDOWS),
            "opo_vs_sequence": {s: v for (_, s), v in family(windows, others).items()} if others else {}}


# ---------------------------------------------------------------- REPORT lines

def run_lr(directory: Path) -> float:
    return float(seed_config(directory, summary_of(directory)["objectives"][0])["config"]["lr"])


def sft_lines(result: dict) -> list[str]:
    lines = []
    for r in result.values():
        flips = r["flipped"]
        lines.append(f"- {r['what']}: " + "; ".join(
            f"OPO − {b}: " + ", ".join(f"{s} {o}" for s, o in x["by_start"].items())
            + f", pooled {x['pooled']} → **{x['verdict']}** over the starts"
            for b, x in r["baselines"].items()) + ". "
            + (f"The outcome flips between the starts against {', '.join(flips)}: that verdict is conditional on "
               "the SFT start." if flips else "No outcome flips between the starts.")
            + f" Pooled ({r['pairs']} pairs): {r['pooled']['text']}")
    return lines


def have(directory: Path) -> bool:
    return (directory / "summary.json").exists()


def missing(*directories: Path) -> list[str]:
    names = " or ".join(f"`{d.name}`" for d in directories if not have(d))
    return [f"Not computed: {names} has no summary.json (`paper_repro/regen_runs.sh` makes it).", ""]


def sft_section(main: Path, sft1: Path) -> list[str]:
    out = ["## Two SFT starts", ""]
    if not (have(main) and have(sft1)):
        return out + missing(main, sft1)
    starts = {"SFT start 0": load(main), "SFT start 1": load(sft1)}
    return out + [
        f"`{main.name}` (SFT warm-up seed 0) and `{sft1.name}` (sft_seed=1), the same objectives and seeds; OPO "
        "against each baseline per start and pooled over both (pair = same start and seed), the rule of the main "
        "comparison; per baseline stats.judge over the two starts ('conditional': from one start only).", "",
        *sft_lines(sft_starts(starts)), ""]


def lr_section(main: Path, lr: Path) -> list[str]:
    out = ["## Learning rates: each method at its best", ""]
    if not (have(main) and have(lr)):
        return out + missing(main, lr)
    result = learning_rates(lr_table([main, lr]), run_lr(main))
    means = "; ".join(f"{o} " + ", ".join(f"{x:g}: {m:.3f}" for x, m in by.items()) + f" (best {result['best'][o]:g})"
                      for o, by in result["means"].items())
    return out + [
        f"`{lr.name}` beside the main runs (lr {result['main_lr']:g}), seeds 0–{result['seeds'] - 1}: mean training "
        f"reward over the last {SELECT_WINDOW:.0%} of the steps by learning rate — {means}. Each method's best rate "
        "is picked by that mean on the same seeds that the comparison below then uses: selection and evaluation "
        "share seeds, so each at-best number is biased upward (more so when a method's rates score alike).", "",
        *[f"- {result['at_best'][k]['text']}" for k, _ in MEASURES],
        *[f"- {result['at_main'][k]['text']} (same seeds)" for k, _ in MEASURES],
        ""]


def released_section(runs: Runs, where: str) -> list[str]:
    out = ["## The released OPO runs' DAPO and GSPO settings", ""]
    rel = released(runs)
    if not rel["pairs"]:
        return out + ["Not computed: no dapo-released/gspo-released runs beside dapo/gspo.", ""]
    out += ["The released OPO runs configure DAPO with clip_low 0 and centred advantages (no std) and GSPO with a "
            f"0.2 clip; the registry's dapo/gspo follow their own papers. Paired over the seeds of {where} (estimate "
            f"[95% CI], MDD at power {POWER:g}):", ""]
    for key, what in MEASURES:
        r = rel[key]
        out.append(f"- {what}: " + "; ".join(v["text"] for v in r["difference"].values()) + f" [{r['rule']}]. "
                   + "; ".join(f"OPO against {a}: {x['released']}, against its registry form: {x['registry']}"
                               + (" — OPO's outcome depends on which setting the baseline takes"
                                  if x["changes"] else " — the same outcome") for a, x in r["opo"].items()) + ".")
    return out + [""]


def entropy_section(runs: Runs, where: str) -> list[str]:
    e = entropy_mechanism(runs)
    return [
        "## §8: the entropy mechanism", "",
        "Paper (§8): OPO's entropy is the highest, attributed to sequence-level rather than token-level supervision. "
        "If so, every sequence-level objective (registry defaults: " + ", ".join(e["sequence"]) + ") ends with more "
        "token entropy than every token-level one (" + ", ".join(e["token"]) + f"). From {where}, `{ENTROPY}`: "
        f"**{e['verdict']}** ({e['detail']}); " + "; ".join(v["text"] for v in e["pairs"].values())
        + (f" [{e['rule']}]" if "rule" in e else "") + ". OPO against the other sequence-level objectives (the "
        "mechanism predicts no detectable difference): "
        + ("; ".join(v["text"] for v in e["opo_vs_sequence"].values()) or "none in these runs") + ".", ""]


def sections(root: Path = RUNS_DIR.parent) -> list[str]:
    """The REPORT sections computed from the run directories under ``root`` (each says so when its runs are
    missing); the released settings and the entropy mechanism pool both SFT starts when there are two."""
    main, sft1, lr = root / RUNS_DIR.name, root / SFT1_DIR.name, root / LR_DIR.name
    out = sft_section(main, sft1) + lr_section(main, lr)
    if not have(main):
        return out + ["## The released OPO runs' DAPO and GSPO settings; §8: the entropy mechanism", "",
                      *missing(main)]
    both = have(sft1)
    runs = pooled(load(main), load(sft1)) if both else load(main)
    where = f"`{main.name}` and `{sft1.name}` pooled (pair = same start and seed)" if both else f"`{main.name}`"
    return out + released_section(runs, where) + entropy_section(runs, where)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=RUNS_DIR.parent,
                        help="folder holding cpu-tiny, cpu-tiny-sft1, cpu-tiny-lr (default figures/runs)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(f"--root {args.root} is not a folder; give the RUNS folder of paper_repro/regen_runs.sh")
    print("\n".join(sections(args.root)))


if __name__ == "__main__":
    main()
