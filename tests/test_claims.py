"""Every claim's verdict is pinned: a regression in the math or the check flips one of these."""

import json
import subprocess
import sys

import pytest

from opo_theory.claims import catalogue, check, check_all
from opo_theory.cli import main

EXPECTED = {
    "conservation": "proved", "escort-geodesic": "proved", "metric-modulation": "verified",
    "shift-invariance": "proved", "closed-form": "proved", "update-ratio": "proved",
    "three-derivations": "proved", "bregman-chi2": "proved", "decoupling": "proved",
    "contraction": "proved", "kl-saturation": "proved", "trust-region-duality": "verified",
    "positivity": "verified", "log-ratio-error": "conditional", "tv-bound": "verified",
    "centering-projection": "proved", "kl-exponential": "proved", "bounded-projection": "verified",
    "lambda-zero": "verified", "toy-saturation": "refuted", "dpo-asymmetry": "proved",
    "parameter-transfer": "conditional", "drive-kl-tilt": "proved", "centring-kl": "proved",
}
ORIGINS = {"bounded-projection": "GOPO", "lambda-zero": "GOPO", "dpo-asymmetry": "other paper",
           "parameter-transfer": "toolkit", "drive-kl-tilt": "toolkit", "centring-kl": "toolkit"}


@pytest.fixture(scope="module")
def results():
    """Every claim checked once for the module (the whole catalogue takes seconds)."""
    return {r.id: r for r in check_all()}


def test_catalogue_has_the_21_spec_ids_then_the_toolkit_checks():
    assert catalogue() == list(EXPECTED)


def test_each_claim_says_whose_statement_it_is(results):
    assert {i: r.origin for i, r in results.items() if r.origin != "paper"} == ORIGINS


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_verdict(results, claim_id):
    assert results[claim_id].verdict == EXPECTED[claim_id], results[claim_id].detail


def test_numbers_behind_the_verdicts(results):
    assert abs(results["bounded-projection"].numbers["lambda_example"] - 0.8 / 3) < 1e-9
    lr = results["log-ratio-error"].numbers
    assert lr["tightness_v"] <= 1 and lr["tightness_v2"] <= 1 and lr["tightness_v"] > 0.99
    assert abs(lr["gap_order"] - 2) < 0.2 and abs(lr["E_delta3_order"] - 3) < 0.2
    assert abs(lr["gap_order_g_scaled"] - 3) < 0.2          # g = O(mu delta): third order
    assert results["contraction"].numbers["max_rate_deviation"] < 1e-9
    # in parameters, like for like (logit step K eta): the first step contracts at |1 - eta mu|, a run does not
    lr_rates = results["parameter-transfer"].numbers["logit_rates"]
    assert abs(lr_rates["first_alpha_0.3"] - lr_rates["theory"]) < 0.01
    assert lr_rates["run_alpha_0.3"] > lr_rates["theory"] + 0.05
    assert abs(lr_rates["run_alpha_0.9"] - lr_rates["run_alpha_0.3"]) > 0.05     # alpha enters over a run
    assert "Holds only under: first GD step" in results["parameter-transfer"].detail
    assert results["drive-kl-tilt"].numbers["max_error_no_correction"] < 1e-9
    assert results["drive-kl-tilt"].numbers["max_departure_with_correction"] > 1.0
    assert results["centring-kl"].numbers["max_gap_surrogate"] < 1e-10
    assert results["positivity"].numbers["agreement"] == 1.0
    assert results["tv-bound"].numbers["tightness_max"] <= 1 + 1e-12
    sat = results["toy-saturation"].numbers
    assert sat["holds_in"] == []          # sign-aware and grid-free: OPO's fixed-anchor logit gradient reverses
    beta = sat["dpo_beta"]
    assert beta["decaying_betas"] == [1.0, 5.0] and 0.3 < beta["critical_beta_closed_form"] < 1.0


def test_toy_saturation_verdict_is_the_bandit_outputs(results):
    from opo_theory.bandit.experiments import saturation
    from opo_theory.claims.toy import judge_saturation
    s = judge_saturation(saturation())["summary"]
    claim = results["toy-saturation"]
    assert (s["claim_verdict"], s["claim_detail"]) == (claim.verdict, claim.detail)
    assert s["holds_in"] == claim.numbers["holds_in"]


def test_every_check_has_a_docstring_and_evidence(results):
    from opo_theory.claims import CLAIMS
    for c in CLAIMS:
        assert c.check.__doc__ and c.check.__doc__.strip(), c.id
        ev = results[c.id].evidence
        assert ev and all({"measured", "theory", "kind", "holds"} <= set(e) for e in ev), c.id


def test_the_verdict_and_its_text_follow_a_perturbed_measurement(monkeypatch):
    from opo_theory.claims import bounds
    before = check("bounded-projection")
    assert before.verdict == "verified" and "FAILS" not in before.detail
    real = bounds.bounded_lambda
    monkeypatch.setattr(bounds, "bounded_lambda", lambda *a, **k: real(*a, **k) + 1e-3)
    after = check("bounded-projection")
    assert after.verdict == "refuted"
    assert "FAILS" in after.detail and f"{before.numbers['lambda_example'] + 1e-3:.4g}" in after.detail
    assert after.detail != before.detail


def test_judge_rule_on_hand_made_evidence():
    from opo_theory.claims.verdict import Evidence, Finding, judge
    ok = Evidence("x", 0.5, 1.0, "bound")
    bad = Evidence("y", 2.0, 1.0, "bound")
    assert judge(Finding([ok]))[0] == "verified"
    assert judge(Finding([ok, Evidence("z", 1.0, 1.0, "bound", condition="c")]))[0] == "verified"
    verdict, text = judge(Finding([bad, Evidence("z", 1.0, 1.0, "bound", condition="when c")]))
    assert verdict == "conditional" and "Holds only under: when c" in text and "FAILS" in text
    assert judge(Finding([bad, Evidence("z", 3.0, 1.0, "bound", condition="c")]))[0] == "refuted"
    assert judge(Finding([Evidence("n", float("nan"), 1.0, "floor")]))[0] == "refuted"
    with pytest.raises(ValueError, match="evidence kind must be one of"):
        Evidence("w", 1, 1, "approx")


def test_unknown_id_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown claim id 'nope'; allowed: conservation"):
        check("nope")
    assert main(["claims", "--id", "nope"]) == 2
    assert "unknown claim id 'nope'" in capsys.readouterr().err


def test_cli_json_covers_every_id():
    out = subprocess.run([sys.executable, "-m", "opo_theory", "claims", "--json",
                          "--id", "positivity", "--id", "tv-bound"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    assert [r["id"] for r in rows] == ["positivity", "tv-bound"]
    assert set(rows[0]) >= {"id", "source", "statement", "verdict", "detail"}


def test_cli_table_lists_all(results, monkeypatch, capsys):
    """The whole catalogue through the CLI; each check's result is the module's (check_all ran them once)."""
    from opo_theory.claims import cli

    ran = []
    monkeypatch.setattr(cli, "checked", lambda claim, k, n: ran.append(claim.id) or results[claim.id])
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert ran == list(EXPECTED)
    assert all(i in out for i in EXPECTED) and f"({len(EXPECTED)} claims)" in out
    assert all(f" {r.verdict} " in line for r in results.values()
               for line in out.splitlines() if line.startswith(f"{r.id} "))


def test_function_space_claims_say_so_and_name_the_parameter_transfer(results):
    from opo_theory.claims.index import get_claim

    for claim_id in ("decoupling", "contraction"):      # proved as stated, in v; parameters are their own claim
        assert get_claim(claim_id).statement.startswith("in v") and results[claim_id].verdict == "proved"
        assert "see parameter-transfer" in results[claim_id].detail
    assert results["parameter-transfer"].verdict != "proved" and results["parameter-transfer"].origin == "toolkit"
