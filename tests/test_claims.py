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
    "three-derivations": "proved", "bregman-chi2": "proved", "decoupling": "conditional",
    "contraction": "proved", "kl-saturation": "proved", "trust-region-duality": "verified",
    "positivity": "verified", "log-ratio-error": "refuted", "tv-bound": "verified",
    "centering-projection": "proved", "kl-exponential": "proved", "bounded-projection": "verified",
    "lambda-zero": "verified", "toy-saturation": "conditional", "dpo-asymmetry": "proved",
}


@pytest.fixture(scope="module")
def results():
    return {r.id: r for r in check_all()}


def test_catalogue_has_all_21_spec_ids():
    assert catalogue() == list(EXPECTED)


@pytest.mark.parametrize("claim_id", list(EXPECTED))
def test_verdict(results, claim_id):
    assert results[claim_id].verdict == EXPECTED[claim_id], results[claim_id].detail


def test_numbers_behind_the_verdicts(results):
    assert abs(results["bounded-projection"].numbers["lambda_example"] - 0.8 / 3) < 1e-9
    lr = results["log-ratio-error"].numbers
    assert lr["tightness_v"] <= 1 and lr["tightness_v2"] <= 1 and lr["tightness_v"] > 0.99
    assert abs(lr["gap_order"] - 2) < 0.2 and abs(lr["E_delta3_order"] - 3) < 0.2
    assert results["contraction"].numbers["max_rate_deviation"] < 1e-9
    assert results["positivity"].numbers["agreement"] == 1.0
    assert results["tv-bound"].numbers["tightness_max"] <= 1 + 1e-12
    sat = results["toy-saturation"].numbers["g0.2_mu1"]
    assert sat["0.999"]["dL_dz"] < 1e-3 < sat["0.999"]["dL_dDelta"]


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


def test_cli_table_lists_all(capsys):
    assert main(["claims"]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in EXPECTED) and "(21 claims)" in out
