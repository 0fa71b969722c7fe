from _nb import write

NAME = "04-lm-diagnostics.ipynb"

cells = [
("md", r"""
# 04 · LM diagnostics: OPO vs baselines on the tiny CPU language model

This notebook reads LM run logs — by default the **committed** ones of the CPU-sized comparison
(`opo-theory compare --preset cpu-tiny --out figures/runs/cpu-tiny`): a small character-level GPT,
warmed up by SFT on an arithmetic task, then trained with each RL objective from the same starting
policy, for several seeds. It reads either output layout:

```
compare --out DIR:  DIR/<objective>/seed<k>/metrics.jsonl   one JSON object per training step
                    DIR/summary.json                         per-objective summary over seeds
train --out DIR:    DIR/config.json, DIR/metrics.jsonl       one run (one objective, one seed)
```

It plots, per objective, the mean over seeds with a min–max band (per-step series as a 5-step moving
average) of: training reward (and accuracy, when the reward is not simply the accuracy), gradient norm,
policy entropy, $E[\Delta^3]$ (the paper's surrogate-quality monitor) and validation accuracy, and shows the
summary table. With more than four objectives the overview draws OPO's band only (eight overlapping bands
hide each other), and a grid of one panel per objective shows each objective's reward band next to OPO's
mean. **No data is generated here**: if the logs are missing the notebook stops with an error saying how to
produce them. Only `glob`/`json` are used to read them (no pandas).

**Environment variables**

| variable | effect | default |
|---|---|---|
| `OPO_RUNS_DIR` | the run logs to read: a `train --out` directory or a `compare --out` directory | `figures/runs/cpu-tiny` (committed) |
| `OPO_NOTEBOOK_SMALL=1` | smaller figures (the test suite's setting; reading logs is cheap either way) | unset |

e.g. `OPO_RUNS_DIR=runs/my-compare jupyter lab notebooks/04-lm-diagnostics.ipynb` (a relative path is taken from the
repository root, wherever the kernel runs).
"""),
("code", r"""
%matplotlib inline
import glob
import html
import json
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display

from opo_theory.lm.experiments.compare import SUMMARY_KEYS, run_summary

SMALL = os.environ.get("OPO_NOTEBOOK_SMALL") == "1"
ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists()), Path.cwd())
# a relative OPO_RUNS_DIR is taken from the repository root (the kernel itself runs in notebooks/)
RUN_DIR = ROOT / Path(os.environ.get("OPO_RUNS_DIR") or "figures/runs/cpu-tiny")
REQUIRED = ("step", "reward/mean", "accuracy", "grad/norm", "entropy/mean", "delta/m3")
print("small mode:", SMALL, "| run dir:", os.path.relpath(RUN_DIR, ROOT))     # relative: the same on every clone
"""),
("code", r"""
HOW = ("Produce them with `opo-theory compare --out DIR` or `opo-theory train --out DIR` (see README) and point "
       "OPO_RUNS_DIR at DIR; this notebook only reads logs and never fabricates them.")
if not RUN_DIR.is_dir():
    raise FileNotFoundError(f"LM run logs not found: {RUN_DIR} does not exist. {HOW}")

def read_jsonl(path):
    rows = []
    with open(path) as fh:
        for i, line in enumerate(fh):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:       # a run still being written may end mid-line
                    print(f"warning: {path}: line {i + 1} is not valid JSON ({err}); ignored")
    return rows

SINGLE = (RUN_DIR / "config.json").is_file()     # a `train` run; else a `compare` directory
runs = {}          # objective (or variant label) -> {seed: rows}
if SINGLE:
    config = json.loads((RUN_DIR / "config.json").read_text())["config"]
    runs[config["objective"]] = {f"seed{config['seed']}": read_jsonl(RUN_DIR / "metrics.jsonl")}
    print(f"one `train` run: {config['objective']} seed {config['seed']}, preset {config['preset']}")
else:
    summary_path = RUN_DIR / "summary.json"
    labels = {}    # run directory name -> label (variants have their own directory names)
    if summary_path.exists():
        labels = {d: label for label, d in json.loads(summary_path.read_text()).get("run_dirs", {}).items()}
    for path in sorted(glob.glob(str(RUN_DIR / "*" / "seed*" / "metrics.jsonl"))):
        name, seed = Path(path).parts[-3], Path(path).parts[-2]
        rows = read_jsonl(path)
        if rows:
            runs.setdefault(labels.get(name, name), {})[seed] = rows
if not any(rows for seeds in runs.values() for rows in seeds.values()):
    raise FileNotFoundError(f"{RUN_DIR} holds no metrics.jsonl with any rows (neither a train run nor "
                            f"<objective>/seed<k>/metrics.jsonl). {HOW}")

for objective, seeds in runs.items():
    for seed, rows in seeds.items():
        missing = [k for k in REQUIRED if not any(k in r for r in rows)]
        if missing:
            raise KeyError(f"{objective}/{seed}/metrics.jsonl has no values for {missing}")
    lengths = {seed: len(rows) for seed, rows in seeds.items()}
    print(f"{objective:10s} seeds: {len(seeds)}  steps per seed: {lengths}")
"""),
("md", r"""
### Aligning seeds

Each curve is the mean over seeds at every step that **all** seeds of that objective have logged,
with the band spanning the seed minimum and maximum. If some seeds are longer (e.g. a comparison
that was still running when the logs were read), the extra steps are left out and a warning is
printed.
"""),
("code", r"""
def finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)

def aligned(objective, key):
    # steps, values[seed, step] (NaN where a seed did not log a finite value)
    seeds = runs[objective]
    by_seed = [{r["step"]: r.get(key) for r in rows} for rows in seeds.values()]
    steps = sorted(set.intersection(*(set(d) for d in by_seed)))
    longest = max(len(d) for d in by_seed)
    if len(steps) < longest and key == "step":
        print(f"warning: {objective}: seeds differ in length; using the {len(steps)} common steps of {longest}")
    vals = np.array([[d[s] if finite(d[s]) else np.nan for s in steps] for d in by_seed], dtype=float)
    return np.array(steps), vals

for objective in runs:
    aligned(objective, "step")

from opo_theory.figures.style import clip_outlying_bands, colors

%matplotlib inline
# (again: importing opo_theory.figures.style selects matplotlib's Agg backend, which would show nothing here)
PALETTE = colors(list(runs))     # the figures' palette (colour-blind safe): an objective has its colour everywhere
ORDER = sorted(runs, key=lambda o: (o != "opo", o))      # OPO first in every legend, then by name
SMOOTH = 5                       # moving average of per-step series (not of evaluations), so many curves stay legible
MAX_BANDS = 4                    # with more objectives the overview draws OPO's band only (bands of 8+ overlap
                                 # into one grey area); the per-objective grid below it shows every band

def moving(x, w):
    return np.convolve(x, np.ones(w) / w, mode="valid") if len(x) >= w else x

def band(ax, key, title, yscale=None, objectives=None, banded=None, reference=None):
    # mean over seeds (line) and min-max over seeds (band) of `key`; `banded`: the objectives drawn with a band
    # (all by default); `reference`: an objective drawn as a thin grey mean line, for comparison
    smoothed = False
    for objective in ([reference] if reference else []) + list(objectives or ORDER):
        steps, vals = aligned(objective, key)
        if np.isnan(vals).all():
            continue
        ok = ~np.isnan(vals).all(0)
        steps, vals = steps[ok], vals[:, ok]
        mean, low, high = np.nanmean(vals, 0), np.nanmin(vals, 0), np.nanmax(vals, 0)
        sparse = len(steps) < 30                                     # evaluations: drawn as points, not smoothed
        if not sparse and len(steps) >= SMOOTH:
            steps, mean, low, high = steps[SMOOTH - 1:], *(moving(x, SMOOTH) for x in (mean, low, high))
            smoothed = True
        if objective == reference:
            ax.plot(steps, mean, color="0.55", lw=1.0, zorder=1, label=f"{objective} (mean)")
            continue
        lead = objective == "opo"                                    # OPO drawn on top, thicker
        ax.plot(steps, mean, color=PALETTE[objective], lw=2.4 if lead else 1.4, zorder=3 if lead else 2,
                label=f"{objective} (n={vals.shape[0]})", **(dict(marker="o", ms=3) if sparse else {}))
        if banded is None or objective in banded:
            ax.fill_between(steps, low, high, color=PALETTE[objective], alpha=0.15 if banded else 0.12, lw=0)
    ax.set_title(title + (f" ({SMOOTH}-step average)" if smoothed else ""), fontsize=10)
    if yscale == "symlog":
        ax.set_yscale("symlog", linthresh=1e-2)
    elif yscale:
        ax.set_yscale(yscale)
    clip_outlying_bands(ax)          # one seed's spike is cut at the axis and marked with its value
"""),
("code", r"""
reward_is_accuracy = all(r["reward/mean"] == r["accuracy"]
                         for seeds in runs.values() for rows in seeds.values() for r in rows)
PANELS = [("reward/mean", "training reward = accuracy (no shaping)" if reward_is_accuracy
           else "training reward (mean over the batch)", None)]
if not reward_is_accuracy:         # with shaping, reward and accuracy differ: both panels
    PANELS.append(("accuracy", "training accuracy (sampled)", None))
PANELS += [("grad/norm", "gradient norm (before clipping)", "log"),
           ("entropy/mean", "policy entropy (nats per token)", None),
           ("delta/m3", "E[Δ³] (sequence log-ratio), dotted ±0.1", "symlog")]
logged = {k for seeds in runs.values() for rows in seeds.values() for r in rows for k in r}
PANELS += [(k, t, None) for k, t in (("val/accuracy", "greedy validation accuracy (train level)"),
                                     ("val/ood_accuracy", "greedy OOD accuracy (held-out level)")) if k in logged]
ncol = 3
nrow = math.ceil(len(PANELS) / ncol)
size = (12, 3.2 * nrow) if SMALL else (16, 4.2 * nrow)
BANDED = None if len(runs) <= MAX_BANDS else [o for o in ORDER if o == "opo"] or ORDER[:1]
fig, axes = plt.subplots(nrow, ncol, figsize=size, layout="constrained")
axes = axes.ravel()
for ax, (key, title, scale) in zip(axes, PANELS):
    band(ax, key, title, scale, banded=BANDED)
m3_ax = axes[[k for k, *_ in PANELS].index("delta/m3")]
for level in (0.1, -0.1):
    m3_ax.axhline(level, color="k", ls=":", lw=1)      # the paper's |E[Delta^3]| = 0.1 threshold
for ax in axes[len(PANELS):]:
    ax.axis("off")
for ax in axes[:len(PANELS)]:
    ax.set_xlabel("RL step")
handles, names = axes[0].get_legend_handles_labels()
what = ("one run" if SINGLE else "mean over seeds, band = min–max over seeds"
        + ("" if BANDED is None else f" ({', '.join(BANDED)} only, of {len(runs)} objectives: every band in the grid below)"))
fig.suptitle(f"{RUN_DIR.name}: {what}")
if len(PANELS) < len(axes):      # the legend in the first unused panel, off the data
    axes[len(PANELS)].legend(handles, names, loc="center", frameon=False, fontsize=11 if len(names) <= 8 else 9,
                             title="objective (seeds)", ncol=1 if len(names) <= 8 else 2)
else:
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 5), frameon=False, fontsize=9)
plt.show()

if BANDED is not None:           # small multiples: each objective's reward with its own band, OPO's mean in grey
    others = [o for o in ORDER if o != "opo"] if "opo" in runs else ORDER
    gcol = min(len(others), 4 if SMALL else 5)
    grow = math.ceil(len(others) / gcol)
    gfig, gaxes = plt.subplots(grow, gcol, figsize=(2.6 * gcol, 2.2 * grow) if SMALL else (3.3 * gcol, 2.7 * grow),
                               sharex=True, sharey=True, squeeze=False, layout="constrained")
    for ax, objective in zip(gaxes.ravel(), others):
        band(ax, "reward/mean", objective, objectives=[objective], reference="opo" if "opo" in runs else None)
        ax.set_title(objective, fontsize=10, color=PALETTE[objective])
        ax.tick_params(labelbottom=True)           # every panel keeps its step axis (a row may end early)
        ax.set_xlabel("RL step")
    for ax in gaxes.ravel()[len(others):]:
        ax.axis("off")
    gfig.suptitle(f"{RUN_DIR.name}: {PANELS[0][1]}, one panel per objective (mean and min–max band over seeds, "
                  f"{SMOOTH}-step average)" + ("; grey: OPO's mean" if "opo" in runs else ""))
    plt.show()
"""),
("md", r"""
## Summary table

For a `compare` directory this is its `summary.json`, written by `opo_theory.lm.experiments.compare` at the end
of the comparison: for each objective and statistic, the mean over seeds and the half-width of its
95% t-interval. The statistics (from `SUMMARY_KEYS`) are tail means over the last steps (or the last
evaluation). Below it we recompute the same statistics from the logs with the package's own
`run_summary` to check that the summary matches the logs. For a single `train` run (or a comparison
that has not written its summary yet) the table is computed here from the logs with `run_summary`;
one seed has no interval.
"""),
("code", r"""
summary_path = RUN_DIR / "summary.json"
FROM_SUMMARY = not SINGLE and summary_path.exists()
if FROM_SUMMARY:
    summary = json.loads(summary_path.read_text())
    table = summary["table"]
    print("summary.json | preset:", summary.get("preset"), "| seeds:", summary.get("seeds"),
          "| objectives:", summary.get("objectives"), "| settings:", summary.get("settings"))
else:
    from opo_theory.stats import mean_ci95
    table = {}
    for name, seeds in runs.items():
        per_seed = [run_summary(rows) for _, rows in sorted(seeds.items())]
        table[name] = {c: dict(zip(("mean", "ci95"), mean_ci95([p[c] for p in per_seed]))) for c in SUMMARY_KEYS}
    print("computed from metrics.jsonl" + ("" if SINGLE else " (no summary.json yet: the comparison is unfinished)"))
cols = [c for c in SUMMARY_KEYS if any(c in row for row in table.values())]
fmt = lambda cell: "n/a" if not finite(cell.get("mean")) else (
    f"{cell['mean']:.3g}" + (f" ± {cell['ci95']:.2g}" if finite(cell.get("ci95")) else ""))
head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
body = "".join(f"<tr><td><b>{html.escape(name)}</b></td>" +
               "".join(f"<td>{fmt(row[c]) if c in row else 'n/a'}</td>" for c in cols) + "</tr>"
               for name, row in table.items())
display(HTML(f"<table><thead><tr><th>objective</th>{head}</tr></thead><tbody>{body}</tbody></table>"
             "<p>mean ± half-width of the 95% t-interval over seeds</p>"))
"""),
("code", r"""
# Recompute from the logs with the package's run_summary and compare with summary.json.
worst = 0.0
for name, row in table.items() if FROM_SUMMARY else ():
    if name not in runs:
        print(f"warning: {name} is in summary.json but has no logs under {RUN_DIR}")
        continue
    per_seed = [run_summary(rows) for _, rows in sorted(runs[name].items())]
    for c in cols:
        logged = [s[c] for s in per_seed]
        stored = row[c].get("seeds", [])
        if len(stored) == len(logged):
            diffs = [abs(a - b) for a, b in zip(logged, stored) if finite(a) and finite(b)]
            worst = max([worst, *diffs])
        else:
            print(f"warning: {name}/{c}: summary has {len(stored)} seeds, logs have {len(logged)}")
print(f"largest |summary.json - recomputed from metrics.jsonl| over all per-seed statistics: {worst:.3g}"
      if FROM_SUMMARY else "nothing to check: the table above was computed from the logs")
"""),
("code", r"""
# Which objective ends highest on each headline statistic, and is the lead outside the seed noise?
for c in ("final_reward", "final_accuracy", "val_accuracy", "ood_accuracy"):
    if c not in cols or (c == "final_accuracy" and reward_is_accuracy):      # the same numbers as final_reward
        continue
    entries = [(name, row[c]["mean"], row[c].get("ci95")) for name, row in table.items() if finite(row[c]["mean"])]
    if not entries:
        continue
    entries.sort(key=lambda e: -e[1])
    (best, m1, h1), rest = entries[0], entries[1:]
    line = f"{c}: best {best} = {m1:.3f}"
    if rest:
        second, m2, h2 = rest[0]
        if finite(h1) and finite(h2):
            overlap = (m1 - h1) <= (m2 + h2)
            line += f"; runner-up {second} = {m2:.3f}; 95% intervals {'overlap' if overlap else 'do not overlap'}"
        else:
            line += f"; runner-up {second} = {m2:.3f} (no interval: fewer than 2 seeds)"
    print(line)
"""),
("code", r"""
# Did training move the policy? First vs last 10 logged steps (mean over seeds), and first vs last evaluation.
print(f"{'objective':10s} {'reward first10':>14s} {'reward last10':>13s} {'val acc first':>13s} {'val acc last':>12s} "
      f"{'grad norm median':>16s}")
for objective in runs:
    steps, rew = aligned(objective, "reward/mean")
    _, val = aligned(objective, "val/accuracy")
    _, gn = aligned(objective, "grad/norm")
    val_steps = ~np.isnan(val).all(0)
    v = np.nanmean(val[:, val_steps], 0) if val_steps.any() else np.array([np.nan])
    print(f"{objective:10s} {np.nanmean(rew[:, :10]):14.3f} {np.nanmean(rew[:, -10:]):13.3f} {v[0]:13.3f} {v[-1]:12.3f} "
          f"{np.nanmedian(gn):16.3g}")
"""),
("code", r"""
# Reading the numbers above: the REPORT's ranking rule applied to these logs (nothing here is written by hand).
from IPython.display import Markdown
from opo_theory.lm.experiments.compare import verdict_from_runs

seed_rows = {o: [rows for _, rows in sorted(seeds.items())] for o, seeds in runs.items()}
if SINGLE or "opo" not in seed_rows or len(seed_rows) < 2 or min(map(len, seed_rows.values())) < 2:
    display(Markdown("**Reading** (computed). These logs hold no comparison of opo against a baseline over at least "
                     "two seeds, so no ranking is stated."))
else:
    v = verdict_from_runs(seed_rows, "reward/mean", "training reward", "higher")
    ood = {o: row["ood_accuracy"]["mean"] for o, row in table.items() if finite(row.get("ood_accuracy", {}).get("mean"))}
    display(Markdown(
        "**Reading** (computed from these logs). REPORT.md's rule ranks opo above a baseline only when a paired "
        "t-test over seeds (Holm-corrected over the baselines) passes in every averaging window (last 10%, 20% and "
        "50% of the steps). Training reward, opo against "
        + ", ".join(f"{b}: {x['outcome']}" for b, x in v["baselines"].items())
        + (f" (not tested: {', '.join(v['not_tested'])}, OPO's own variants)" if v["not_tested"] else "")
        + f"; verdict **{v['verdict']}**."
        + (f" Mean OOD accuracy at the end is at most {max(ood.values()):.3f} over the objectives." if ood else "")))
"""),
("md", r"""
## How to read these curves

* **Reward vs accuracy.** With the task's shaping off, reward equals accuracy; with shaping on,
  "mean reward" is not accuracy (the same caveat applies to the paper's reported rewards).
* **Gradient norms are not comparable across objectives.** Each loss has its own scale (OPO's
  sequence-level $-g\Delta + \tfrac{\mu}{2}\Delta^2$ vs token-level clipped ratios), so a larger OPO
  gradient norm — the paper's "gradient response efficiency" argument — says nothing by itself
  about learning speed. Notebook 02 shows that a large OPO gradient can be mostly the χ² penalty
  pulling back towards the anchor. Compare reward/accuracy curves instead.
* **$E[\Delta^3]$** is plotted on a symmetric-log axis with the paper's ±0.1 threshold dotted. It
  is a signed moment: it can be small while $|\Delta|$ is large (notebook 03), and the loss gap of
  the surrogate is second order, not $O(E[\Delta^3])$ (notebook 01). Read it as a rough
  off-policyness indicator only.
* **Seeds.** The bands are min–max over a handful of seeds of a tiny model; differences inside the
  bands (and inside the 95% intervals of the summary) are not evidence for one objective over
  another. The cell above states whether the leader's interval separates from the runner-up's.
"""),
]

if __name__ == "__main__":
    print(write(NAME, cells))
