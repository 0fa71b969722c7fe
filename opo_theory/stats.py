"""Statistics over seeds (numpy/scipy, no torch): t-intervals, log-space bands, paired tests, Holm's
correction, averaging windows, the minimum detectable difference, and the one rule that turns paired
comparisons into a verdict in the claims' vocabulary.

Every threshold lives here: CONFIDENCE, ALPHA, POWER, WINDOWS, MIN_SEEDS, SPREAD_TOL.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95             # intervals: 95% t-intervals over seeds
ALPHA = 0.05                  # family-wise error of a set of comparisons (Holm)
POWER = 0.8                   # the power at which the minimum detectable difference is stated
WINDOWS = (0.1, 0.2, 0.5)     # averaging windows: the last 10%, 20% and 50% of a run's steps
MIN_SEEDS = 3                 # fewer paired seeds: a comparison is undetermined
SPREAD_TOL = 1e-12            # values this close (relative) have no spread: float rounding, not seed noise
# Outcomes of one paired comparison and the verdicts over several (the claims' words, plus two for data
# that cannot decide): 'conditional' = holds under a stated condition.
OUTCOMES = ("higher", "lower", "no detectable difference", "undetermined")
VERDICTS = ("verified", "conditional", "refuted", "not supported", "undetermined")


def finite(values) -> np.ndarray:
    """The finite values of ``values`` (None and nan left out) as a float array."""
    return np.asarray([float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float)


def no_spread(x: np.ndarray) -> bool:
    """True when the values are equal up to float rounding: max - min <= SPREAD_TOL max(1, max |x|) (e.g. every
    seed's difference is exactly 0.45 - 0.40, computed as slightly different floats)."""
    return len(x) > 0 and float(np.ptp(x)) <= SPREAD_TOL * max(1.0, float(np.abs(x).max()))


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its CONFIDENCE t-interval, x̄ ± t_{n-1} s/√n (nan for one value); None/nan skipped."""
    x = finite(values)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) < 2 or no_spread(x):
        return float(x.mean()), (math.nan if len(x) < 2 else 0.0)
    low, high = stats.t.interval(CONFIDENCE, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(x.mean()), float((high - low) / 2)


def mean_ci95_log(values) -> tuple[float, float, float]:
    """Geometric mean and its interval exp(mean log x ± t s/√n), which cannot reach 0 for a positive quantity.
    Any value <= 0 gives (arithmetic mean, nan, nan); one value gives (it, nan, nan)."""
    x = finite(values)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if (x <= 0).any():
        return float(x.mean()), math.nan, math.nan
    m, h = mean_ci95(np.log(x))
    return float(math.exp(m)), math.exp(m - h), math.exp(m + h)


def interval(values, kind: str = "signed") -> dict:
    """{"mean", "low", "high", "n"}: 'positive' geometric mean and log-space interval (arithmetic, clipped at 0,
    when a value is 0), 'fraction' an arithmetic interval clipped to [0, 1], 'signed' a plain t-interval."""
    x = finite(values)
    if len(x) == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    if kind == "positive" and x.min() > 0:
        m, lo, hi = mean_ci95_log(x)
        return {"mean": m, "low": lo, "high": hi, "n": len(x)}
    m, h = mean_ci95(x)
    lo, hi = m - h, m + h
    if kind in ("positive", "fraction"):
        lo = max(lo, 0.0)
    if kind == "fraction":
        hi = min(hi, 1.0)
    return {"mean": m, "low": lo, "high": hi, "n": len(x)}


# ---------------------------------------------------------------- windows over a run's rows

def tail_mean(rows: list[dict], key: str, last: int) -> float:
    """Mean of the last ``last`` finite values of ``key`` in one run (0 = the last value only); null is missing."""
    vals = [r[key] for r in rows if key in r and r[key] is not None and math.isfinite(r[key])]
    vals = vals[-1:] if last == 0 else vals[-last:]
    return float(np.mean(vals)) if vals else math.nan


def window_mean(rows: list[dict], key: str, frac: float) -> float:
    """Mean of the finite values of ``key`` logged in the last ``frac`` of the run's steps (the last logged value
    when none falls inside, e.g. an evaluation-only key in a short window)."""
    vals = [(r["step"], r[key]) for r in rows if r.get(key) is not None and math.isfinite(r[key])]
    if not vals:
        return math.nan
    n = max(r["step"] for r in rows) + 1
    cut = n - max(1, round(frac * n))
    inside = [v for s, v in vals if s >= cut]
    return float(np.mean(inside)) if inside else float(vals[-1][1])


# ---------------------------------------------------------------- paired comparisons

def holm(p: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) (same order as ``p``);
    a nan p (an undetermined comparison) stays nan and counts in m."""
    m = len(p)
    order = sorted((i for i in range(m) if not math.isnan(p[i])), key=lambda i: p[i])
    out, running = [math.nan] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def min_detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference a two-sided paired t-test at ``alpha`` detects with ``power``:
    (t_{1-alpha/2, n-1} + t_{power, n-1}) s_d/√n (nan with fewer than 2 pairs)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return float((stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n))


@dataclass(frozen=True)
class Paired:
    """One paired comparison a - b over seeds: estimate, CONFIDENCE interval, two-sided p (nan when every
    difference is the same: no spread to test against), and the minimum detectable difference at ``alpha``."""

    n: int
    estimate: float
    low: float
    high: float
    p: float
    sd: float
    mdd: float
    alpha: float = ALPHA

    def to_json(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 3, mdd: float | None = None) -> str:
        """'+0.018 [-0.043, +0.079], MDD 0.11 (3 seeds)' (``mdd`` in place of the one at ``alpha``)."""
        if self.n < 2:
            return f"{self.estimate:+.{digits}f} ({self.n} seed: undetermined)"
        mdd = self.mdd if mdd is None else mdd
        return (f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}], MDD "
                f"{mdd:.2g} ({self.n} seeds)")


def paired(a, b, alpha: float = ALPHA) -> Paired:
    """Paired t-test of a - b over the seeds where both are finite (scipy.stats.ttest_rel)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    d = np.asarray([x - y for x, y in pairs], dtype=float)
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, alpha)
    mean, half = mean_ci95(d)
    sd = (0.0 if no_spread(d) else float(d.std(ddof=1))) if n >= 2 else math.nan
    p = float(stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue) if n >= 2 and sd > 0 else math.nan
    return Paired(n, float(mean), float(mean - half), float(mean + half), p, sd,
                  min_detectable_difference(sd, n, alpha), alpha)


def outcome(test: Paired, p_adjusted: float | None = None, alpha: float = ALPHA, min_seeds: int = MIN_SEEDS) -> str:
    """'higher' / 'lower' when the (Holm-adjusted) p is below ``alpha``; 'undetermined' with fewer than
    ``min_seeds`` pairs or no spread (every seed gives the same difference); else 'no detectable difference'."""
    p = test.p if p_adjusted is None else p_adjusted
    if test.n < min_seeds or math.isnan(p):
        return "undetermined"
    if p < alpha:
        return "higher" if test.estimate > 0 else "lower"
    return "no detectable difference"


def judge(outcomes: dict[str, str], claimed: str = "higher") -> tuple[str, str]:
    """The one rule from per-condition outcomes to a verdict in the claims' vocabulary: 'verified' when the
    claimed direction is detected under every condition; 'conditional' under some (named); 'refuted' when the
    opposite is detected somewhere and the claimed nowhere; 'not supported' when no direction is detected
    (where it fails is named); 'undetermined' when no condition can decide."""
    if claimed not in ("higher", "lower"):
        raise ValueError(f"claimed must be 'higher' or 'lower', got {claimed!r}")
    opposite = "lower" if claimed == "higher" else "higher"
    holds = [c for c, o in outcomes.items() if o == claimed]
    against = [c for c, o in outcomes.items() if o == opposite]
    flat = [c for c, o in outcomes.items() if o == "no detectable difference"]
    if outcomes and len(holds) == len(outcomes):
        return "verified", f"{claimed} under every condition ({', '.join(holds)})"
    if holds:
        rest = "; ".join(f"{o} under {', '.join(c for c, x in outcomes.items() if x == o)}"
                         for o in OUTCOMES if o != claimed and o in outcomes.values())
        return "conditional", f"holds under {', '.join(holds)}; {rest}"
    if against:
        return "refuted", f"{opposite} under {', '.join(against)}" + (
            f"; no detectable difference under {', '.join(flat)}" if flat else "")
    if flat:
        return "not supported", f"no detectable difference under {', '.join(flat)}"
    return "undetermined", "too few seeds or no spread under every condition"


def judge_range(low: float, high: float, claimed: tuple[float, float]) -> str:
    """A claimed range against a CONFIDENCE interval [low, high]: 'verified' when the interval lies inside the
    range, 'refuted' when it lies outside, 'undetermined' when it straddles an end or is missing (nan)."""
    if math.isnan(low) or math.isnan(high):
        return "undetermined"
    if claimed[0] <= low and high <= claimed[1]:
        return "verified"
    return "refuted" if high < claimed[0] or low > claimed[1] else "undetermined"


def family(by_window: dict[float, dict[str, list[float]]], pairs: list[tuple[str, str]],
           alpha: float = ALPHA) -> dict[tuple[str, str], dict]:
    """Paired t-tests of a - b over seeds for every (a, b) in ``pairs`` and every averaging window, Holm-corrected
    over the pairs within a window. A pair's outcome is 'higher'/'lower' only when it is so in every window
    ('undetermined' when any window is, else 'no detectable difference'); it is reported as estimate, interval
    and minimum detectable difference (at the Holm level of the strictest step, alpha/m) in the widest window."""
    windows = sorted(by_window)
    per = {pair: {} for pair in pairs}
    for w in windows:
        tests = [paired(by_window[w][a], by_window[w][b], alpha) for a, b in pairs]
        for pair, t, p in zip(pairs, tests, holm([t.p for t in tests]), strict=True):
            per[pair][w] = (t, p, outcome(t, p, alpha))
    out = {}
    for (a, b), by_w in per.items():
        words = {x[2] for x in by_w.values()}
        word = words.pop() if len(words) == 1 else (
            "undetermined" if "undetermined" in words else "no detectable difference")
        t = by_w[windows[-1]][0]
        mdd = min_detectable_difference(t.sd, t.n, alpha / len(pairs))
        out[(a, b)] = {"outcome": word, "widest": t.to_json() | {"mdd_holm": mdd},
                       "p_holm": [by_w[w][1] for w in windows], "text": f"{a} - {b} {t.text(mdd=mdd)}: {word}"}
    return out


def versus(by_window: dict[float, dict[str, list[float]]], reference: str, what: str, claimed: str = "higher",
           alpha: float = ALPHA) -> dict:
    """``reference`` against each other entry (not all pairs): ``family`` over the pairs (reference, baseline)
    (seed k of every entry shares the SFT start and the prompt stream); the verdict is ``judge`` over the
    baselines."""
    windows = sorted(by_window)
    first = by_window[windows[0]]
    if reference not in first:
        return {"verdict": "undetermined", "text": f"{what}: no {reference} runs to compare", "baselines": {}}
    bases = [n for n in first if n != reference]
    out = {b: v for (_, b), v in family(by_window, [(reference, b) for b in bases], alpha).items()}
    verdict, detail = judge({b: v["outcome"] for b, v in out.items()}, claimed)
    rule = family_rule(f"{reference} vs each baseline", len(bases), windows, alpha)
    text = (f"{what}: {reference} {claimed} than the baselines — **{verdict}** ({detail}); "
            + "; ".join(v["text"] for v in out.values()) + f" [{rule}; estimate [95% CI], MDD at power {POWER:g}, "
            f"widest window]")
    return {"verdict": verdict, "detail": detail, "text": text, "baselines": out, "windows": list(windows),
            "reference": reference, "claimed": claimed, "alpha": alpha, "rule": rule}


def family_rule(who: str, m: int, windows, alpha: float = ALPHA) -> str:
    """The rule's words: 'WHO, paired t-test over seeds, Holm over m comparisons, p < alpha in every window'."""
    label = "/".join(f"{round(100 * w)}%" for w in sorted(windows))
    return (f"{who}, paired t-test over seeds, Holm over {m} " + ("baselines" if "each baseline" in who else
            "comparisons") + f", p < {alpha} in every averaging window (last {label} of the steps)")


def change(before, after, what: str, alpha: float = ALPHA) -> dict:
    """Paired change after - before over seeds: estimate, interval, MDD, and the outcome 'higher' (improved),
    'lower' (worsened), 'no detectable difference' or 'undetermined' (fewer than MIN_SEEDS pairs, or every
    seed changed by the same amount)."""
    t = paired(after, before, alpha)
    word = outcome(t, None, alpha)
    ok = [(b, a) for b, a in zip(before, after, strict=True)
          if b is not None and a is not None and math.isfinite(b) and math.isfinite(a)]
    return {"before": float(np.mean([b for b, _ in ok])) if ok else math.nan,
            "after": float(np.mean([a for _, a in ok])) if ok else math.nan,
            "change": t.estimate, "low": t.low, "high": t.high, "ci95": (t.high - t.low) / 2, "mdd": t.mdd,
            "p": t.p, "seeds": t.n, "outcome": word, "verdict": CHANGE_WORDS[word], "what": what}


CHANGE_WORDS = {"higher": "improved", "lower": "worsened", "no detectable difference": "no detectable change",
                "undetermined": "undetermined"}
