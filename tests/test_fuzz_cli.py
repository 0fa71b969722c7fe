"""Fuzz every command line with random and hostile arguments (hypothesis), in-process through cli.main.

Each input must either succeed (exit 0) or exit 2 with exactly one stderr line, ``opo-theory: error: ...``,
that names one of the hostile values given; no exception may escape main(), and a failed command leaves
nothing behind in its working directory. Every example runs in a fresh temporary working directory that
holds a regular file ``afile`` and an empty directory ``adir``; relative paths land there and absolute
ones are only ever under /proc, so nothing is written into the repository.

What runs for real: argument parsing, validation, output-directory checks, the claims checks, the bandit
experiments (from small base settings), and for train/compare everything up to the RL loop: config,
task pools, SFT warm-up of the micro LM (tests/test_lm.py's settings, SFT cache shared by the module),
run-directory checks and the run directory with its config.json and empty metrics.jsonl. What is
patched: ``Trainer.run`` (the RL loop; tests/test_lm.py and tests/test_strict_json.py run it) returns at
once, and ``figures`` builds through a stub that writes one JSON file into ``--out`` (nothing when --out
is omitted, i.e. figures/), so ``--rerun`` (a 10-minute LM comparison) and figures/ are never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opo_theory.bandit.experiments import EXPERIMENTS
from opo_theory.cli import main
from opo_theory.figures import catalogue
from opo_theory.io import REPO_ROOT
from opo_theory.lm.config import TrainConfig
from opo_theory.lm.task import SPLIT_SIZES
from opo_theory.lm.trainer import Trainer
from opo_theory.objectives import available, get
from opo_theory.settings import function_defaults

MICRO = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=30", "pool_size=300", "val_size=20",
         "train_level=2", "ood_level=3", "val_every=2", "sft_batch=32", "shaping=0.5", "checkpoint_every=2",
         "prompts_per_step=4", "steps=2"]
SMALL_BANDIT = {
    "saturation": ["points=20"],
    "dynamics": ["arms=3", "seeds=2", "steps=3", "group_size=2"],
    "grid": ["alphas=0.5", "mus=1.0", "seeds=2", "arms=3", "outer=2", "inner=2", "n_boot=2"],
    "approx": ["arms=3", "seeds=2", "etas=0.1", "inner_steps=1"],
    "positivity": ["arms=3", "instances=4", "mus=1.0", "scales=1.0"],
    "kl-vs-chi2": ["arms=3", "scales=1.0,2.0"],
}
CHEAP_CLAIMS = ["positivity", "tv-bound", "log-ratio-error", "dpo-asymmetry", "metric-modulation"]

# Values that break something somewhere: zero, negatives, non-finite, huge, too long, wrong types, blanks.
HOSTILE_TEXT = ["0", "-1", "-0", "1.5", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "1e-400", str(10**30),
                str(2**63), "1_000_000_000_000", "1" * 5000, "abc", "", " ", "[1]", "(1, 2)", "None", "true",
                "0x10", "1,2", "-1e308", "é", "{}"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
# Small integers are the only valid values drawn, so a valid input stays cheap; large ones are far beyond
# every limit. Floats come from the whole line, non-finite included.
VALUES = st.one_of(st.sampled_from(HOSTILE_TEXT), st.integers(-3, 3).map(str),
                   st.integers(10**12, 10**40).map(str), st.integers(-(10**40), -(10**12)).map(str),
                   st.floats().map(repr), TEXT)
DIR_PATHS = ["out", "a/b/out", "adir", ".", "afile", "afile/sub", "adir/../afile/x", "/proc/version/x",
             "/proc/1/newdir", "", "x" * 300, "adir/" + "y" * 300 + "/z"]
FILE_PATHS = ["res.json", "a/b/res.json", "afile", "adir", "adir/", "afile/x.json", "/proc/version/x",
              "/proc/1/x.json", "", "z" * 300]
EXTRA_ARGS = ["--bogus", "extra", "-x", "--", "--set"]
VALID_TRAIN_SETS = ("temperature=0.7", "top_p=0.9", "lr=0.001", "group_size=2", "weight_decay=0.1", "grad_clip=0.5",
                    "shaping=0", "ppo_epochs=1", "minibatches=1", "approx_grad=false",
                    "grad_split=false", "trust_region_metrics=false", "val_every=1", "bf16=true")

COUNTS: dict[str, int] = {}
OUTCOMES: dict[tuple[str, int], int] = {}


def safe_relative(text: str) -> str:
    """Random text as a path inside the working directory (no absolute path, no '..')."""
    parts = [p for p in text.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) if parts else "p"


def forms(value: str) -> set[str]:
    """How an error message may name ``value``: as given, escaped, cut short, parsed (e.g. '-0' -> 0), or
    one item of a comma list (``--objectives '(1, 2)'`` is refused for its item '(1')."""
    out = {value, value.strip(), repr(value), repr(value)[1:-1], value[:20], repr(value)[1:21]}
    if "," in value:
        out |= {repr(item) for item in value.split(",") if item}
    for kind in (int, float):
        with contextlib.suppress(ValueError, OverflowError):
            out.add(repr(kind(value)))
    return {f for f in out if f.strip()}


@dataclasses.dataclass
class Case:
    """An argv and the hostile (key, value) pairs in it: an exit-2 message must name one of them (the value,
    or the key: an option or positional argparse names, e.g. 'argument --steps: expected one argument',
    or a whole ``--set`` pair)."""

    argv: list[str]
    hostile: list[tuple[str, str]]


class Builder:
    """Collects argv pieces; ``hostile`` marks the ones an error may legitimately blame."""

    def __init__(self, draw, command: list[str]):
        self.draw, self.argv, self.hostile = draw, list(command), []
        self.valid_only = draw(st.integers(0, 9)) < 3       # 3 in 10 cases draw no hostile piece at all

    def chance(self, tenths: int) -> bool:
        return self.draw(st.integers(0, 9)) < tenths

    def option(self, flag: str, valid: list[str], hostile=VALUES, p_hostile: int = 3, p_omit: int = 0,
               required: bool = False):
        """``flag`` with a valid value, a hostile value (p_hostile tenths) or left out (p_omit tenths)."""
        roll = self.draw(st.integers(0, 9))
        if roll < p_omit and not (self.valid_only and required):
            if required:
                self.hostile.append((flag, flag))         # argparse: the following arguments are required
            return
        if self.valid_only or roll >= p_omit + p_hostile:
            value = self.draw(st.sampled_from(valid))
        else:
            value = self.draw(hostile)
            self.hostile.append((flag, value))
        self.argv += [flag, value]

    def sets(self, base: list[str], keys: list[str], n_max: int = 3, valid: tuple[str, ...] = ()):
        for s in base:
            self.argv += ["--set", s]
        if self.valid_only:
            for s in self.draw(st.lists(st.sampled_from(valid), max_size=3, unique=True)) if valid else []:
                self.argv += ["--set", s]
            return
        for _ in range(self.draw(st.integers(0, n_max))):
            if self.chance(1):
                key = self.draw(st.sampled_from(["nope", "", "objective.nope", "objective."]) | TEXT)
                self.hostile.append((key, key.split("=")[0].removeprefix("objective.")))
            else:
                key = self.draw(st.sampled_from(keys))
            value = self.draw(VALUES)
            pair = key + "=" + value if not self.chance(1) else key          # sometimes no '='
            self.argv += ["--set", pair]
            if pair.startswith("-"):      # argparse takes it for an option: 'argument --set: expected one argument'
                self.hostile.append(("--set", pair))
            if "=" not in pair:
                self.hostile.append((pair, pair))
            else:      # a blank value can only be named by its key ('alphas must be a list of 1 to 100 values')
                self.hostile.append((pair if value.strip() else key, value))

    def path(self, flag: str, choices: list[str], valid: list[str], p_omit: int = 0, required: bool = False):
        """A path from ``choices`` (hostile ones included) or random text, ``valid`` only in a valid case."""
        if self.chance(p_omit) and not (self.valid_only and required):
            if required:
                self.hostile.append((flag, flag))
            return
        if self.valid_only:
            self.argv += [flag, self.draw(st.sampled_from(valid))]
            return
        value = self.draw(st.sampled_from(choices) | TEXT.map(safe_relative))
        self.argv += [flag, value]
        self.hostile.append((flag, value))

    def flags(self, names: list[str]):
        for name in names:
            if self.chance(3):
                self.argv.append(name)

    def noise(self):
        if not self.valid_only and self.chance(1):
            extra = self.draw(st.sampled_from(EXTRA_ARGS))
            self.argv.append(extra)
            self.hostile.append((extra, extra))

    def case(self) -> Case:
        return Case(self.argv, self.hostile)


@st.composite
def claims_cases(draw):
    b = Builder(draw, ["claims"])
    formats = [[], ["--json"], ["--markdown"]] + ([] if b.valid_only else [["--json", "--markdown"]])
    b.argv += draw(st.sampled_from(formats))
    if "--json" in b.argv and "--markdown" in b.argv:        # mutually exclusive
        b.hostile += [("--json", "--json"), ("--markdown", "--markdown")]
    for _ in range(draw(st.integers(1, 3))):
        b.option("--id", CHEAP_CLAIMS)
    b.noise()
    return b.case()


@st.composite
def bandit_cases(draw):
    b = Builder(draw, ["bandit"])
    if not b.valid_only and b.chance(1):
        name = draw(VALUES)
        b.argv.append(name)
        b.hostile.append(("experiment", name))
        keys = ["points"]
    else:
        name = draw(st.sampled_from(sorted(EXPERIMENTS)))
        b.argv.append(name)
        keys = list(function_defaults(EXPERIMENTS[name]))
    b.sets(SMALL_BANDIT.get(name, []), keys)
    b.path("--out", FILE_PATHS, ["res.json", "a/b/res.json", "afile"], p_omit=4)
    b.flags(["--json", "--list-settings"])
    b.noise()
    return b.case()


TRAIN_KEYS = [f.name for f in dataclasses.fields(TrainConfig)
              if f.name not in ("objective", "preset", "seed", "objective_config", "model")]


def lm_common(b: Builder, sft_cache: str, objective: str | None):
    b.option("--preset", ["cpu-tiny"], p_omit=6)
    b.option("--model", ["char-gpt"], hostile=st.sampled_from(["hf:", "hf:afile", "hf:adir", "gpt2", ""]) | VALUES,
             p_omit=8)
    b.option("--steps", ["1", "2"], p_omit=3)
    obj_keys = [f"objective.{f.name}" for f in dataclasses.fields(get(objective).config_cls)] if objective else []
    b.sets(MICRO + [f"sft_cache={sft_cache}"], TRAIN_KEYS + obj_keys, valid=VALID_TRAIN_SETS)
    # '.' holds afile and adir: not a run directory, so train refuses it (compare writes into subdirectories)
    b.path("--out", DIR_PATHS, ["out", "a/b/out", "adir"], p_omit=1, required=True)
    b.flags(["--resume", "--quiet", "--quiet"])
    b.noise()


@st.composite
def train_cases(draw, sft_cache: str):
    b = Builder(draw, ["train"])
    b.option("--objective", sorted(available()), p_hostile=2, p_omit=1, required=True)
    i = b.argv.index("--objective") + 1 if "--objective" in b.argv else None
    objective = b.argv[i] if i is not None and b.argv[i] in available() else None
    b.option("--seed", ["0", "1"], p_omit=5)
    lm_common(b, sft_cache, objective)
    return b.case()


@st.composite
def compare_cases(draw, sft_cache: str):
    b = Builder(draw, ["compare"])
    b.option("--objectives", ["opo", "grpo,opo"], hostile=st.sampled_from(["", ",", "opo,opo", "opo,nope", " opo"])
             | VALUES, p_hostile=3)
    b.option("--seeds", ["1"], p_hostile=3)
    lm_common(b, sft_cache, None)
    return b.case()


@st.composite
def figures_cases(draw):
    b = Builder(draw, ["figures"])
    names = catalogue.artifact_names()
    for _ in range(draw(st.integers(0, 3))):
        if not b.valid_only and b.chance(3):
            value = draw(VALUES)
            b.hostile.append(("NAME", value))
        else:
            value = draw(st.sampled_from(names))
        b.argv.append(value)
    b.path("--out", DIR_PATHS, ["out", "a/b/figs", "adir"], p_omit=2)
    if "report" in b.argv and "--out" in b.argv:       # the report reads the other artifacts from --out
        b.hostile.append(("report", "report"))
    b.flags(["--rerun", "--list"])
    b.noise()
    return b.case()


@st.composite
def top_level_cases(draw):
    words = st.sampled_from(["claims", "bandit", "train", "compare", "figures", "--help", "-h", "--bogus",
                             "grid", "--out", "--json"]) | VALUES
    argv = draw(st.lists(words, max_size=4))
    required = ["COMMAND", "experiment", "--objective", "--out"]      # what a bare sub-command lacks
    return Case(argv, [(w, w) for w in argv] + [(r, r) for r in required])


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_case(case: Case, counter: str) -> None:
    COUNTS[counter] = COUNTS.get(counter, 0) + 1
    old = os.getcwd()
    with tempfile.TemporaryDirectory() as ws:
        ws = Path(ws)
        (ws / "afile").write_text("a regular file\n")
        (ws / "adir").mkdir()
        before = tree(ws)
        out, err = io.StringIO(), io.StringIO()
        os.chdir(ws)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = main(case.argv)
        except BaseException as exc:       # noqa: BLE001 - any escape is the failure being tested for
            raise AssertionError(f"{type(exc).__name__} escaped main({case.argv!r}): {exc}") from exc
        finally:
            os.chdir(old)
        err_text = err.getvalue()
        OUTCOMES[counter, rc] = OUTCOMES.get((counter, rc), 0) + 1
        assert rc in (0, 2), (case.argv, rc, err_text[-2000:])
        if rc == 2:
            lines = err_text.rstrip("\n").split("\n")
            assert len(lines) == 1 and lines[0].startswith("opo-theory: error: "), (case.argv, err_text[-2000:])
            named = [key for key, value in case.hostile
                     if any(f in lines[0] for f in forms(value) | ({key} if key.strip() else set()))]
            assert named, f"{case.argv!r}: error names none of the hostile values {case.hostile!r}: {lines[0]}"
            assert tree(ws) == before, f"{case.argv!r} failed but left {set(tree(ws)) - set(before)}"


def fake_build(name: str, rerun: bool = False, out: Path | None = None) -> list[Path]:
    """Stands in for an artifact script: one small file in ``out``, nothing in the repository."""
    if out is None or Path(out).resolve().is_relative_to(REPO_ROOT):
        return []
    path = Path(out) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"stub": true}\n')
    return [path]


@pytest.fixture(scope="module")
def sft_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fuzz-sft"))


# Default-suite budget per command (examples); the slow variant multiplies each by SLOW_FACTOR.
EXAMPLES = {"top-level": 100, "claims": 100, "bandit": 200, "train": 150, "compare": 100, "figures": 150}
SLOW_FACTOR = 10


def strategy_for(command: str, sft_cache: str):
    return {"top-level": top_level_cases(), "claims": claims_cases(), "bandit": bandit_cases(),
            "train": train_cases(sft_cache), "compare": compare_cases(sft_cache),
            "figures": figures_cases()}[command]


def fuzz(command: str, n: int, sft_cache: str, monkeypatch, derandomize: bool = True) -> None:
    monkeypatch.setattr(catalogue, "build", fake_build)
    monkeypatch.setattr(Trainer, "run", lambda self: self.out / "metrics.jsonl")
    start, before, ok_before = time.perf_counter(), COUNTS.get(command, 0), OUTCOMES.get((command, 0), 0)

    @settings(max_examples=n, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy_for(command, sft_cache))
    def check(case):
        run_case(case, command)

    check()
    ok = OUTCOMES.get((command, 0), 0) - ok_before
    print(f"\nfuzz {command}: {COUNTS[command] - before} inputs ({ok} succeeded, the rest exit 2) in "
          f"{time.perf_counter() - start:.1f} s (all commands so far: {sum(COUNTS.values())})")


@pytest.mark.parametrize("command", list(EXAMPLES))
def test_fuzz_command_line(command, sft_cache, monkeypatch):
    fuzz(command, EXAMPLES[command], sft_cache, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("command", list(EXAMPLES))
def test_fuzz_command_line_many(command, sft_cache, monkeypatch):
    fuzz(command, EXAMPLES[command] * SLOW_FACTOR, sft_cache, monkeypatch, derandomize=False)


# ---------------------------------------------------------------- the limits the fuzz relies on

def _expressions(level: int):
    """Every expression opo_theory.lm.task._expression can draw at ``level`` (written out independently)."""
    ops, d = "+-", range
    if level == 1:
        return {f"{a}+{b}" for a in d(10) for b in d(10)}
    if level == 2:
        return {f"{a}{o}{b}" for a in d(100) for o in ops for b in d(100)}
    if level == 3:
        return {f"{a}{o}{b}" for a in d(1000) for o in ops for b in d(1000)} | {f"{a}*{b}" for a in d(100) for b in d(10)}
    if level == 4:
        return ({f"({a}{o}{b})*{c}" for a in d(100) for o in ops for b in d(100) for c in d(10)}
                | {f"{a}*{b}{o}{c}" for a in d(100) for b in d(10) for o in ops for c in d(100)})
    return {f"({a}{o}{b})*({c}{p}{e})" for a in d(100) for o in ops for b in d(10) for c in d(10) for p in ops
            for e in d(100)}


def _check_split_sizes(levels):
    for level in levels:
        exprs = _expressions(level)
        val = sum(zlib.crc32(e.encode()) % 5 == 0 for e in exprs)
        assert (SPLIT_SIZES[level, "train"], SPLIT_SIZES[level, "val"]) == (len(exprs) - val, val)


def test_split_sizes_count_every_distinct_problem():
    _check_split_sizes((1, 2))


@pytest.mark.slow
def test_split_sizes_count_every_distinct_problem_all_levels():
    _check_split_sizes((3, 4, 5))


def test_output_checks_leave_nothing_behind(tmp_path):
    from opo_theory.validation import require_output_dir, require_output_file

    (tmp_path / "f").write_text("x")
    assert require_output_dir("--out", tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert require_output_file("--out", tmp_path / "c" / "r.json") == tmp_path / "c" / "r.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]        # probed, created, removed again
    for bad, match in ((tmp_path / "f", "exists and is not a directory"), (tmp_path / "f" / "x", "lies under"),
                       ("/proc/1/newdir", "cannot be created or written"), ("", "non-empty path")):
        with pytest.raises(ValueError, match=match):
            require_output_dir("--out", bad)
    with pytest.raises(ValueError, match="is a directory; expected a file path"):
        require_output_file("--out", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
