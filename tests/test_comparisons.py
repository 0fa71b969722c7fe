"""REPORT's cross-directory comparisons (opo_theory.figures.comparisons) on small synthetic run directories:
each verdict follows the numbers (swap two objectives' data and it flips)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opo_theory.figures import comparisons as cmp

SEEDS = 5


def seeds(level: float, entropy: float = 0.5, seed: int = 0, n: int = SEEDS, steps: int = 20) -> list[list[dict]]:
    """Rows of ``n`` seeds at reward/val level ``level`` and entropy ``entropy``, with small seeded noise."""
    rng = np.random.default_rng(seed)
    return [[{"step": s, "reward/mean": level + rng.normal(0, 0.002), "val/accuracy": level + rng.normal(0, 0.002),
              "entropy/mean": entropy + rng.normal(0, 0.002)} for s in range(steps)] for _ in range(n)]


def write_dir(path, runs: dict[str, list[list[dict]]], lr: dict[str, float] | None = None):
    """A compare directory: summary.json, and per label and seed metrics.jsonl and config.json."""
    from opo_theory.lm.experiments.compare import parse_variant

    dirs = {label: parse_variant(label).dirname for label in runs}
    for label, seed_rows in runs.items():
        for k, rows in enumerate(seed_rows):
            d = path / dirs[label] / f"seed{k}"
            d.mkdir(parents=True)
            (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            (d / "config.json").write_text(json.dumps({"config": {"lr": (lr or {}).get(label, 1e-4)}}))
    n = len(next(iter(runs.values())))
    (path / "summary.json").write_text(json.dumps({"seeds": n, "objectives": list(runs), "run_dirs": dirs}))
    return path


def test_sft_starts_name_a_verdict_that_flips_between_starts():
    higher = {"opo": seeds(0.6, seed=1), "grpo": seeds(0.4, seed=2), "dapo": seeds(0.4, seed=3)}
    flat = {"opo": seeds(0.5, seed=4), "grpo": seeds(0.5, seed=5), "dapo": seeds(0.3, seed=6)}
    r = cmp.sft_starts({"start 0": higher, "start 1": flat})["reward/mean"]
    assert r["pairs"] == 2 * SEEDS
    assert r["baselines"]["dapo"]["verdict"] == "verified" and not r["baselines"]["dapo"]["flips"]
    grpo = r["baselines"]["grpo"]
    assert grpo["by_start"] == {"start 0": "higher", "start 1": "no detectable difference"}
    assert grpo["verdict"] == "conditional" and r["flipped"] == ["grpo"]
    constant = [[{**row, "reward/mean": row["reward/mean"] + 0.1} for row in rows] for rows in flat["grpo"]]
    undecided = cmp.sft_starts({"start 0": flat, "start 1": {**flat, "opo": constant}})["reward/mean"]
    assert undecided["baselines"]["grpo"]["by_start"]["start 1"] == "undetermined"    # a constant difference
    assert not undecided["baselines"]["grpo"]["flips"]                                  # is no flip
    # swap OPO's and GRPO's data: the direction turns over
    swapped = {s: {**runs, "opo": runs["grpo"], "grpo": runs["opo"]} for s, runs in
               (("start 0", higher), ("start 1", flat))}
    assert cmp.sft_starts(swapped)["reward/mean"]["baselines"]["grpo"]["verdict"] == "refuted"
    assert any("conditional on the SFT start" in line for line in cmp.sft_lines(cmp.sft_starts(
        {"start 0": higher, "start 1": flat})))


def test_learning_rates_compare_each_method_at_its_best():
    table = {"opo": {3e-5: seeds(0.3, seed=1, n=3), 1e-4: seeds(0.5, seed=2, n=3), 3e-4: seeds(0.7, seed=3, n=3)},
             "grpo": {3e-5: seeds(0.6, seed=4, n=3), 1e-4: seeds(0.5, seed=5, n=3), 3e-4: seeds(0.2, seed=6, n=3)}}
    r = cmp.learning_rates(table, 1e-4)
    assert r["best"] == {"opo": 3e-4, "grpo": 3e-5} and r["seeds"] == 3
    assert r["at_best"]["reward/mean"]["verdict"] == "verified"
    assert r["at_main"]["reward/mean"]["verdict"] in ("not supported", "undetermined")   # equal at 1e-4
    worse = cmp.learning_rates({"opo": table["opo"], "grpo": {**table["grpo"], 3e-5: seeds(0.9, seed=7, n=3)}}, 1e-4)
    assert worse["at_best"]["reward/mean"]["verdict"] == "refuted"
    with pytest.raises(ValueError, match="no opo runs"):
        cmp.learning_rates({"grpo": table["grpo"]}, 1e-4)


def test_lr_table_reads_the_rate_from_each_run_and_pairs_the_seeds(tmp_path):
    main = write_dir(tmp_path / "cpu-tiny", {"opo": seeds(0.5), "grpo": seeds(0.4), "dapo-released": seeds(0.1)})
    lr = write_dir(tmp_path / "cpu-tiny-lr", {"opo(lr=3e-05)": seeds(0.2, n=3), "grpo(lr=3e-05)": seeds(0.8, n=3)},
                   lr={"opo(lr=3e-05)": 3e-5, "grpo(lr=3e-05)": 3e-5})
    table = cmp.lr_table([main, lr])
    assert set(table) == {"opo", "grpo"} and set(table["opo"]) == {1e-4, 3e-5}   # dapo-released is no lr variant
    assert all(len(rows) == 3 for by in table.values() for rows in by.values())
    assert cmp.learning_rates(table, cmp.run_lr(main))["best"] == {"opo": 1e-4, "grpo": 3e-5}


def test_released_settings_against_the_registry():
    runs = {"opo": seeds(0.5, seed=1), "dapo": seeds(0.4, seed=2), "dapo-released": seeds(0.6, seed=3),
            "gspo": seeds(0.45, seed=4), "gspo-released": seeds(0.45, seed=5)}
    r = cmp.released(runs)["reward/mean"]
    assert r["difference"]["dapo-released"]["outcome"] == "higher"
    assert r["opo"]["dapo-released"] == {**r["opo"]["dapo-released"], "released": "lower", "registry": "higher",
                                         "changes": True}
    assert r["difference"]["gspo-released"]["outcome"] == "no detectable difference"
    assert not r["opo"]["gspo-released"]["changes"]
    swapped = cmp.released({**runs, "dapo": runs["dapo-released"], "dapo-released": runs["dapo"]})["reward/mean"]
    assert swapped["difference"]["dapo-released"]["outcome"] == "lower"
    assert cmp.released({"opo": runs["opo"], "dapo": runs["dapo"]}) == {"pairs": []}


def test_entropy_mechanism_follows_sequence_versus_token_level():
    seq_high = {"opo": seeds(0.5, 0.8, seed=1), "gspo": seeds(0.5, 0.8, seed=2), "grpo": seeds(0.5, 0.5, seed=3),
                "dapo": seeds(0.5, 0.5, seed=4), "dapo-released": seeds(0.5, 0.1, seed=5)}
    e = cmp.entropy_mechanism(seq_high)
    assert e["sequence"] == ["opo", "gspo"] and e["token"] == ["grpo", "dapo"]     # variants left out
    assert e["verdict"] == "verified" and e["opo_vs_sequence"]["gspo"]["outcome"] == "no detectable difference"
    gspo_low = cmp.entropy_mechanism({**seq_high, "gspo": seeds(0.5, 0.2, seed=6)})
    assert gspo_low["verdict"] == "conditional" and "gspo - grpo" in gspo_low["detail"]
    assert gspo_low["opo_vs_sequence"]["gspo"]["outcome"] == "higher"
    swapped = {**seq_high, "opo": seq_high["grpo"], "grpo": seq_high["opo"], "gspo": seq_high["dapo"],
               "dapo": seq_high["gspo"]}
    assert cmp.entropy_mechanism(swapped)["verdict"] == "refuted"


def test_sections_from_run_directories(tmp_path):
    main = {"opo": seeds(0.6, seed=1), "grpo": seeds(0.4, seed=2), "dapo": seeds(0.5, seed=3),
            "gspo": seeds(0.5, seed=4), "dapo-released": seeds(0.5, seed=5)}
    write_dir(tmp_path / "cpu-tiny", main)
    text = "\n".join(cmp.sections(tmp_path))
    assert text.count("Not computed") == 2 and "## §8: the entropy mechanism" in text
    write_dir(tmp_path / "cpu-tiny-sft1", {k: seeds(0.5, seed=10 + i) for i, k in enumerate(main)})
    write_dir(tmp_path / "cpu-tiny-lr", {f"{o}(lr=0.0003)": seeds(0.3, seed=20 + i, n=3)
                                         for i, o in enumerate(("opo", "grpo", "dapo", "gspo"))},
              lr={f"{o}(lr=0.0003)": 3e-4 for o in ("opo", "grpo", "dapo", "gspo")})
    text = "\n".join(cmp.sections(tmp_path))
    assert "Not computed" not in text and "selection and evaluation share seeds" in text
    assert "conditional on the SFT start" in text and "(best 0.0001)" in text
    with pytest.raises(SystemExit, match="not a folder"):
        cmp.main(["--root", str(tmp_path / "nope")])
