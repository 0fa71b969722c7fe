"""The docs match the code: every metric key docs/metrics.md lists is logged somewhere (a committed run
or a cheap run made here) and every logged key is documented; no text cites files outside the repository;
docs/paper_index.md names functions, tests and artifacts that exist."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import micro_settings

from opo_theory.cli import main
from opo_theory.io import REPO_ROOT

METRICS_MD = REPO_ROOT / "docs" / "metrics.md"
COMMITTED = sorted((REPO_ROOT / "figures" / "runs").glob("*/*/seed*/metrics.jsonl"))   # and their dirs' *.json
# MICRO (tests/conftest.py) with these; shaping: partial credit, rewards within a group differ, so the pairwise
# run has pairs
DOCS_SETTINGS = ("val_every=1", "group_size=4", "steps=2", "peak_tflops=1", "shaping=0.5")
# One cheap run per family of objective-specific keys: OPO (escort weights, the exact-loss twin),
# pairwise (pair/*), bounded projection (gopo/*), clipped (clip/*, and DAPO's dynamic sampling keys),
# KL-regularized (a reference model). Extra settings per run after the objective.
CHEAP_RUNS = (("opo",), ("dpo",), ("gopo-bounded",), ("grpo",), ("ppo-kl",), ("dapo", "dynamic_sampling=true"))
METRICS = "metrics.jsonl"


def documented() -> list[tuple[str, str]]:
    """(file, key) for the backticked keys in the first cell of each row of the first table; a cell that
    starts with a file name (`` `pre_rl.json`: ``) documents that file's keys, the others metrics.jsonl's."""
    lines = METRICS_MD.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| key |"))
    keys = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cell = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", cell)
        file = METRICS
        if names and re.fullmatch(r"`[^`]+\.jsonl?`:", cell.strip().split()[0]):
            file, names = names[0], names[1:]
        keys += [(file, n) for n in names]
    return keys


def pattern(key: str) -> re.Pattern:
    """A documented key as a regex: ``<name>`` and ``*`` stand for one path segment (see docs/metrics.md)."""
    return re.compile("".join("[^/]+" if part.startswith("<") or part == "*" else re.escape(part)
                              for part in re.split(r"(<[^>]+>|\*)", key)))


def keys_in(run_dirs) -> dict[str, set[str]]:
    """file name -> the keys of that file over ``run_dirs`` (metrics.jsonl: every row's keys)."""
    out: dict[str, set[str]] = {}
    for d in run_dirs:
        for path in Path(d).iterdir():
            if path.name == METRICS:
                rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            elif path.suffix == ".json" and path.name != "config.json":
                rows = [json.loads(path.read_text())]
            else:
                continue
            for row in rows:
                out.setdefault(path.name, set()).update(row)
    return out


def diagnostics_keys() -> set[str]:
    """What ``batch_metrics`` returns on a small exactly enumerated OPO batch (the bandits' metrics)."""
    import torch

    from opo_theory.bandit.enumerate import exact_batch
    from opo_theory.diagnostics import batch_metrics
    from opo_theory.objectives import get

    g = torch.Generator().manual_seed(0)
    logp_old = torch.randn(3, 4, generator=g, dtype=torch.float64).log_softmax(-1)
    logp = (logp_old + 0.1 * torch.randn(3, 4, generator=g, dtype=torch.float64)).log_softmax(-1)
    batch = exact_batch(logp, logp_old, torch.rand(3, 4, generator=g, dtype=torch.float64))
    return set(batch_metrics(batch, "opo", get("opo").make_config()))


@pytest.fixture(scope="module")
def logged(tmp_path_factory, sft_cache) -> dict[str, set[str]]:
    """Keys of the committed runs, of a 2-step micro run for each CHEAP_RUNS entry and of the batch
    diagnostics (all from this code)."""
    root = tmp_path_factory.mktemp("docs-runs")
    dirs = [p.parent for p in COMMITTED]
    for objective, *extra in CHEAP_RUNS:
        out = root / "-".join([objective, *extra]).replace("=", "_")
        assert main(["train", "--objective", objective, "--out", str(out), "--quiet",
                     "--set", *micro_settings(*DOCS_SETTINGS, *extra, cache=sft_cache)]) == 0
        dirs.append(out)
    found = keys_in(dirs)
    found[METRICS] = found.get(METRICS, set()) | diagnostics_keys()
    return found


def test_the_metrics_table_is_found():
    keys = [k for f, k in documented() if f == METRICS]
    assert len(keys) > 30 and "loss/total" in keys and "val/ood_accuracy" in keys


def test_every_documented_key_is_logged(logged):
    missing = [f"{f}: {k}" for f, k in documented() if not any(pattern(k).fullmatch(x) for x in logged.get(f, ()))]
    assert not missing, f"docs/metrics.md lists keys no run logs: {missing}"


def test_every_logged_key_is_documented(logged):
    docs = documented()
    undocumented = sorted(f"{f}: {x}" for f, keys in logged.items() for x in keys
                          if not any(pattern(k).fullmatch(x) for g, k in docs if g == f))
    assert not undocumented, f"logged but not in docs/metrics.md: {undocumented}"


# ---------------------------------------------------------------- no citations of outside files

CITATION = re.compile(r"spec ?§|baselines\.md|DESIGN\.md|\bissue \d+", re.IGNORECASE)


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    keep = (".py", ".md", ".toml", ".cfg", ".txt")
    return [REPO_ROOT / n for n in names.splitlines()
            if n.endswith(keep) and not n.startswith(("notebooks/", "figures/")) and n != "tests/test_docs.py"]


def test_no_citations_of_files_outside_the_repository():
    hits = [f"{p.relative_to(REPO_ROOT)}:{i}: {line.strip()[:80]}" for p in tracked_text_files() if p.exists()
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if CITATION.search(line)]
    assert not hits, "\n".join(hits)


# ---------------------------------------------------------------- the paper index points at real things

def test_paper_index_names_existing_functions_tests_and_artifacts():
    text = (REPO_ROOT / "docs" / "paper_index.md").read_text()
    names = set(re.findall(r"`(opo_theory\.[\w.]+|tests/[\w/]+\.py(?:::\w+)?|(?:figures|paper_repro)/[\w./-]+)`", text))
    assert len(names) > 40
    bad = []
    for name in sorted(names):
        if name.startswith(("tests/", "figures/", "paper_repro/")):
            path, _, test = name.partition("::")
            if not (REPO_ROOT / path).exists() or (test and f"def {test}" not in (REPO_ROOT / path).read_text()):
                bad.append(name)
            continue
        parts = name.split(".")
        for i in range(len(parts), 0, -1):      # longest importable module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                bad.append(name)
            break
        else:
            bad.append(name)
    assert not bad, f"docs/paper_index.md names what does not exist: {bad}"


def test_readme_claims_table_matches_the_committed_claims_artifact():
    """The README's verdict table says what `opo-theory claims` wrote (figures/claims-table.json) for every id."""
    rows = json.loads((REPO_ROOT / "figures" / "claims-table.json").read_text())["data"]["claims"]
    measured = {r["id"]: r["verdict"] for r in rows}
    readme = (REPO_ROOT / "README.md").read_text()
    stated = dict(re.findall(r"^\| `([a-z0-9-]+)` \| [^|]+\| \*\*([a-z]+)\*\* \|$", readme, flags=re.M))
    assert stated == measured
