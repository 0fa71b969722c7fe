from _nb import write

cells = [
("md", r"""
# 04 · LM diagnostics: OPO vs baselines on the tiny CPU language model

This notebook reads the **committed** run logs of the CPU-sized LM comparison
(`python -m opo_theory compare --preset cpu-tiny --out figures/runs/cpu-tiny`): a small
character-level GPT, warmed up by SFT on an arithmetic task, then trained with each RL objective
from the same starting policy, for several seeds. Layout:

```
figures/runs/cpu-tiny/<objective>/seed<k>/metrics.jsonl   one JSON object per training step
figures/runs/cpu-tiny/summary.json                         per-objective summary over seeds
```

It plots, per objective, the mean over seeds with a min–max band of: training reward, accuracy,
gradient norm, policy entropy and $E[\Delta^3]$ (the paper's surrogate-quality monitor), and shows
the summary table. **No data is generated here**: if the logs are missing the notebook stops with
an error saying how to produce them. Only `glob`/`json` are used to read them (no pandas).

Small mode (`OPO_NOTEBOOK_SMALL=1`) changes nothing but the figure size: reading logs is cheap.
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

from opo_theory.lm.compare import SUMMARY_KEYS, run_summary

SMALL = os.environ.get("OPO_NOTEBOOK_SMALL") == "1"
ROOT = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "pyproject.toml").exists()), Path.cwd())
RUN_DIR = Path(os.environ.get("OPO_LM_RUN_DIR", ROOT / "figures" / "runs" / "cpu-tiny"))
REQUIRED = ("step", "reward/mean", "accuracy", "grad/norm", "entropy/mean", "delta/m3")
print("small mode:", SMALL, "| run dir:", RUN_DIR)
"""),
("code", r"""
HOW = ("Produce them with `python -m opo_theory compare --preset cpu-tiny --out figures/runs/cpu-tiny` "
       "(see README); this notebook only reads logs and never fabricates them.")
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

runs = {}          # objective -> {seed: rows}
for path in sorted(glob.glob(str(RUN_DIR / "*" / "seed*" / "metrics.jsonl"))):
    objective, seed = Path(path).parts[-3], Path(path).parts[-2]
    rows = read_jsonl(path)
    if rows:
        runs.setdefault(objective, {})[seed] = rows
if not runs:
    raise FileNotFoundError(f"{RUN_DIR} holds no <objective>/seed<k>/metrics.jsonl with any rows. {HOW}")

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

def band(ax, key, title, yscale=None):
    for i, objective in enumerate(runs):
        steps, vals = aligned(objective, key)
        if np.isnan(vals).all():
            continue
        ok = ~np.isnan(vals).all(0)
        steps, vals = steps[ok], vals[:, ok]
        mean = np.nanmean(vals, 0)
        color = f"C{i % 10}"
        marker = dict(marker="o", ms=3) if len(steps) < 30 else {}     # sparse series (evaluations)
        ax.plot(steps, mean, color=color, lw=1.6, label=f"{objective} (n={vals.shape[0]})", **marker)
        ax.fill_between(steps, np.nanmin(vals, 0), np.nanmax(vals, 0), color=color, alpha=0.2, lw=0)
    ax.set_title(title, fontsize=10); ax.set_xlabel("step")
    if yscale == "symlog":
        ax.set_yscale("symlog", linthresh=1e-2)
    elif yscale:
        ax.set_yscale(yscale)
"""),
("code", r"""
PANELS = [("reward/mean", "training reward (mean over the batch)", None),
          ("accuracy", "training accuracy", None),
          ("grad/norm", "gradient norm (before clipping)", "log"),
          ("entropy/mean", "policy entropy", None),
          ("delta/m3", "E[Δ³] (sequence log-ratio)", "symlog")]
has_val = any("val/accuracy" in r for seeds in runs.values() for rows in seeds.values() for r in rows)
if has_val:
    PANELS.append(("val/accuracy", "validation accuracy (logged every few steps)", None))
ncol = 3
nrow = math.ceil(len(PANELS) / ncol)
size = (12, 3.2 * nrow) if SMALL else (16, 4.2 * nrow)
fig, axes = plt.subplots(nrow, ncol, figsize=size)
axes = axes.ravel()
for ax, (key, title, scale) in zip(axes, PANELS):
    band(ax, key, title, scale)
m3_ax = axes[[k for k, *_ in PANELS].index("delta/m3")]
for level in (0.1, -0.1):
    m3_ax.axhline(level, color="k", ls=":", lw=1)      # the paper's |E[Delta^3]| = 0.1 threshold
for ax in axes[len(PANELS):]:
    ax.axis("off")
axes[0].legend(fontsize=8)
fig.suptitle(f"{RUN_DIR.name}: mean over seeds, band = min–max", y=1.0)
fig.tight_layout(); plt.show()
"""),
("md", r"""
## Summary table (`summary.json`)

`summary.json` is written by `opo_theory.lm.compare` at the end of the comparison: for each
objective and statistic, the mean over seeds and the half-width of its 95% t-interval. The
statistics (from `SUMMARY_KEYS`) are tail means over the last steps (or the last evaluation).
Below it we recompute the same statistics from the logs with the package's own `run_summary` to
check that the summary matches the committed logs.
"""),
("code", r"""
summary_path = RUN_DIR / "summary.json"
if not summary_path.exists():
    raise FileNotFoundError(f"{summary_path} is missing: the comparison has not finished writing its summary. {HOW}")
summary = json.loads(summary_path.read_text())
table = summary["table"]
print("preset:", summary.get("preset"), "| seeds:", summary.get("seeds"), "| objectives:", summary.get("objectives"),
      "| settings:", summary.get("settings"))
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
for name, row in table.items():
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
print(f"largest |summary.json - recomputed from metrics.jsonl| over all per-seed statistics: {worst:.3g}")
"""),
("code", r"""
# Which objective ends highest on each headline statistic, and is the lead outside the seed noise?
for c in ("final_reward", "final_accuracy", "val_accuracy"):
    if c not in cols:
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
("md", r"""
**What the committed logs showed when this notebook was written** (cpu-tiny preset: train level 2,
OOD level 3, 3 seeds, 100 steps of 64 prompts × 8 responses, objectives opo, grpo, dapo, gspo,
dr-grpo; re-read the printed numbers if the logs have been regenerated): every objective improved on
the SFT starting point by about the same amount — mean sampled training reward rose from 0.426–0.432
over the first 10 steps to 0.496–0.522 over the last 10, and greedy validation accuracy (held-out
level 2) from 0.505–0.527 to 0.562–0.593, with every 95% interval of the final statistics
overlapping. Level-3 (OOD) accuracy stayed at about 0.01 for all five. OPO's median gradient norm
(2.68) was close to GRPO's, DAPO's and GSPO's (2.46, 2.36, 2.14) and about 3 times Dr. GRPO's
(0.79) — a property of each loss's scale, see the caveat below — and its mean $|E[\Delta^3]|$ was
the smallest of the five (0.006, GSPO 0.008, the others 0.04–0.07). Entropy fell from about 0.36 to
0.29–0.31 for all five and did not separate them. At this scale the run does not
reproduce the paper's OPO advantage; it does not refute it either (tiny model, few seeds).
"""),
("md", r"""
## How to read these curves

* **Reward vs accuracy.** With the task's shaping off, reward equals accuracy; with shaping on,
  "mean reward" is not accuracy (the same caveat applies to the paper's numbers, spec §5).
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
    print(write("04-lm-diagnostics.ipynb", cells))
