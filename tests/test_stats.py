"""opo_theory.stats: intervals, log bands, paired tests, Holm, windows, the minimum detectable difference and
the one judging rule, each against scipy or an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from opo_theory.stats import (
    ALPHA,
    POWER,
    change,
    family,
    holm,
    interval,
    judge,
    mean_ci95,
    mean_ci95_log,
    min_detectable_difference,
    outcome,
    paired,
    tail_mean,
    versus,
    window_mean,
)


def test_mean_ci95_is_the_t_interval_by_hand_and_scipy_s():
    x = [0.3, 0.45, 0.41, 0.52, 0.38]
    m, h = mean_ci95(x)
    by_hand = 2.7764451051977987 * np.std(x, ddof=1) / math.sqrt(5)      # t_{0.975, 4}
    assert m == pytest.approx(np.mean(x)) and h == pytest.approx(by_hand, rel=1e-12)
    lo, hi = sps.ttest_1samp(x, 0).confidence_interval(0.95)
    assert (m - h, m + h) == pytest.approx((lo, hi), rel=1e-12)
    assert mean_ci95([1.0, None, float("nan")]) == (1.0, pytest.approx(math.nan, nan_ok=True))
    assert mean_ci95([0.45] * 3) == (0.45, 0.0)


def test_log_band_is_positive_and_is_the_exponentiated_t_interval():
    x = [0.01, 0.5, 3.0]
    assert mean_ci95(x)[0] - mean_ci95(x)[1] < 0          # the linear t-band crosses zero here
    gm, lo, hi = mean_ci95_log(x)
    m, h = mean_ci95(list(np.log(x)))
    assert (gm, lo, hi) == pytest.approx((math.exp(m), math.exp(m - h), math.exp(m + h)))
    assert 0 < lo < gm < hi
    assert math.isnan(mean_ci95_log([0.0, 1.0])[1])        # not a positive sample: no log band
    frac = interval([0.98, 1.0, 0.99], "fraction")
    assert frac["high"] == 1.0 and frac["n"] == 3


def test_paired_is_scipy_ttest_rel_and_a_constant_difference_is_undetermined():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5), rng.normal(size=5)
    t = paired(list(a), list(b))
    assert t.p == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12) and t.n == 5
    # GSPO's greedy val accuracy was 0.45 in all three seeds: no spread, no p = 0, no "± 0.000 improved"
    same = paired([0.45, 0.45, 0.45], [0.40, 0.40, 0.40])
    assert math.isnan(same.p) and outcome(same) == "undetermined"
    assert change([0.40] * 3, [0.45] * 3, "val")["verdict"] == "undetermined"


def test_holm_matches_its_definition_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.01, math.nan, 0.02])                     # an undetermined test counts in m, stays nan
    assert out[0] == pytest.approx(0.03) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_min_detectable_difference_has_the_stated_power():
    # independent: power of the two-sided paired t-test at the MDD from the noncentral t distribution
    for n, sd in ((3, 0.05), (5, 0.05), (10, 0.2)):
        mdd = min_detectable_difference(sd, n)
        crit = sps.t.ppf(1 - ALPHA / 2, n - 1)
        nc = mdd / (sd / math.sqrt(n))
        power = sps.nct.sf(crit, n - 1, nc) + sps.nct.cdf(-crit, n - 1, nc)
        assert abs(power - POWER) < 0.05, (n, power)
    # a referee's arithmetic: 3 seeds, Holm over 28 pairs -> the first step needs t > 23.6
    assert sps.t.ppf(1 - ALPHA / 28 / 2, 2) == pytest.approx(23.6, abs=0.1)
    assert math.isnan(min_detectable_difference(0.1, 1))


def test_windows_take_the_tail_and_fall_back_to_the_last_value():
    rows = [{"step": s, "x": float(s)} for s in range(10)] + [{"step": 3, "e": 7.0}]
    assert window_mean(rows, "x", 0.2) == pytest.approx(8.5)
    assert window_mean(rows, "e", 0.1) == 7.0           # no evaluation in the last 10%: the last one
    assert tail_mean(rows, "x", 3) == pytest.approx(8.0) and tail_mean(rows, "x", 0) == 9.0


def test_judge_speaks_the_claims_vocabulary():
    assert judge({"grpo": "higher", "dapo": "higher"})[0] == "verified"
    verdict, text = judge({"grpo": "higher", "dapo": "no detectable difference"})
    assert verdict == "conditional" and "holds under grpo" in text and "dapo" in text
    assert judge({"grpo": "lower", "dapo": "no detectable difference"})[0] == "refuted"
    verdict, text = judge({"grpo": "no detectable difference"})
    assert verdict == "not supported" and "grpo" in text
    assert judge({"grpo": "undetermined"})[0] == "undetermined"
    assert judge({"grpo": "lower"}, claimed="lower")[0] == "verified"
    with pytest.raises(ValueError, match="claimed must be"):
        judge({}, claimed="bigger")


def synthetic(gap: float, noise: float, seeds: int = 5, windows=(0.1, 0.2, 0.5)) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for w in windows:
        base = rng.normal(0.5, 0.05, seeds)          # shared per seed: the paired design
        out[w] = {"opo": list(base + gap + rng.normal(0, noise, seeds)), "grpo": list(base + rng.normal(0, noise, seeds)),
                  "dapo": list(base - gap + rng.normal(0, noise, seeds))}
    return out


def test_versus_tests_the_reference_against_each_baseline_only():
    v = versus(synthetic(gap=0.2, noise=0.001), "opo", "reward")
    assert v["verdict"] == "verified" and set(v["baselines"]) == {"grpo", "dapo"}
    w = v["baselines"]["grpo"]["widest"]
    assert w["low"] < w["estimate"] < w["high"] and w["mdd_holm"] > w["mdd"] > 0       # Holm over 2 baselines
    assert "MDD" in v["text"] and "Holm over 2 baselines" in v["text"]
    assert versus(synthetic(gap=0.005, noise=0.05), "opo", "reward")["verdict"] == "not supported"
    assert versus(synthetic(gap=-0.2, noise=0.001), "opo", "reward")["verdict"] == "refuted"


def test_versus_needs_every_window_and_enough_seeds():
    data = synthetic(gap=0.2, noise=0.001)
    data[0.5] = {"opo": data[0.5]["dapo"], "grpo": data[0.5]["grpo"], "dapo": data[0.5]["opo"]}   # flips in one window
    assert versus(data, "opo", "reward")["baselines"]["dapo"]["outcome"] == "no detectable difference"
    assert versus(synthetic(gap=0.2, noise=0.001, seeds=2), "opo", "reward")["verdict"] == "undetermined"


def test_judge_range():
    from opo_theory.stats import judge_range
    assert judge_range(4.0, 5.0, (3.3, 7.5)) == "verified"
    assert judge_range(1.8, 2.1, (3.3, 7.5)) == "refuted"
    assert judge_range(3.0, 4.0, (3.3, 7.5)) == "undetermined"
    assert judge_range(math.nan, 4.0, (3.3, 7.5)) == "undetermined"


def test_change_outcomes():
    assert change([0.5] * 3, [0.6, 0.61, 0.62], "acc")["verdict"] == "improved"
    assert change([0.5] * 3, [0.4, 0.6, 0.55], "acc")["verdict"] == "no detectable change"
    assert change([0.5], [0.6], "acc")["verdict"] == "undetermined"


def test_family_holm_counts_every_pair_and_a_constant_difference_is_undetermined():
    data = synthetic(gap=0.2, noise=0.001)
    for w in data:
        data[w]["same"] = [x + 0.1 for x in data[w]["grpo"]]          # grpo + 0.1 in every seed: no spread
    pairs = [("opo", "grpo"), ("grpo", "dapo"), ("same", "grpo")]
    out = family(data, pairs)
    assert out[("opo", "grpo")]["outcome"] == "higher" and out[("grpo", "dapo")]["outcome"] == "higher"
    assert out[("same", "grpo")]["outcome"] == "undetermined" and "+0.100" in out[("same", "grpo")]["text"]
    one = family(data, pairs[:1])[("opo", "grpo")]
    assert out[("opo", "grpo")]["widest"]["mdd_holm"] > one["widest"]["mdd_holm"]      # Holm over 3, not 1
    assert all(a >= b for a, b in zip(out[("opo", "grpo")]["p_holm"], one["p_holm"], strict=True))


def test_a_constant_difference_up_to_float_rounding_is_undetermined():
    from opo_theory.stats import paired

    b = [0.1234, 0.5678, 0.9012]
    a = [x + 0.1 for x in b]                       # a - b is 0.1 in every seed, computed with rounding
    assert len({x - y for x, y in zip(a, b, strict=True)}) > 1
    t = paired(a, b)
    assert math.isnan(t.p) and t.sd == 0 and outcome(t) == "undetermined" and t.low == t.high
    assert outcome(paired([x + 0.1 + 1e-6 * k for k, x in enumerate(b)], b)) == "higher"   # real spread is tested
