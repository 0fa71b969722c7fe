"""Fuzz every command line with random and hostile arguments (hypothesis), in-process through cli.main.

Each input must either succeed (exit 0) or exit 2 with exactly one error line, ``opo-theory: error: ...``,
last on stderr (progress lines may come before it), that names one of the hostile values given; no exception may escape main(), and a failed command leaves
nothing behind in its working directory. Every example runs in a fresh temporary working directory that
holds a regular file ``afile`` and an empty directory ``adir``; relative paths land there and absolute
ones are only ever under /proc, so nothing is written into the repository.

What runs for real: argument parsing, validation, output-directory checks, the claims checks, the bandit
experiments (from small base settings), and for train/compare everything up to the RL loop: config,
task pools, SFT warm-up of the micro LM (tests/conftest.py's MICRO, SFT cache shared by the session),
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
from conftest import micro_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opo_theory.bandit.experiments import EXPERIMENTS
from opo_theory.cli import main
from opo_theory.figures import catalogue
from opo_theory.io import REPO_ROOT
from opo_theory.lm.tasks.arithmetic import SPLIT_SIZES
from opo_theory.lm.training.config import TrainConfig
from opo_theory.lm.training.trainer import Trainer
from opo_theory.objectives import available, get
from opo_theory.settings import function_defaults

MICRO = micro_settings("shaping=0.5", "steps=2")      # tests/conftest.py's MICRO; the SFT cache is the session's
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
    files: dict[str, str] = dataclasses.field(default_factory=dict)     # written into the workspace first


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

    def case(self, files: dict[str, str] | None = None) -> Case:
        return Case(self.argv, self.hostile, files or {})


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


class TomlRaw(str):
    """TOML text written as it is (dates, times, deep nesting)."""


def toml_text(value) -> str:
    """``value`` in TOML syntax (json.dumps writes a valid TOML basic string)."""
    import json

    if isinstance(value, TomlRaw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value > 0 else "-inf") if abs(value) == float("inf") else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


TOML_SCALARS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-3, 3), st.floats(), st.booleans(), TEXT,
                         st.sampled_from([TomlRaw("1979-05-27"), TomlRaw("07:32:00"), TomlRaw("1979-05-27T07:32:00Z"),
                                          TomlRaw("[" * 600 + "]" * 600), TomlRaw("{ a = 1 }"), "١", "1e300"]))
TOML_VALUES = st.one_of(TOML_SCALARS, st.lists(TOML_SCALARS, max_size=3),
                        st.lists(st.lists(st.integers(0, 3), max_size=2), max_size=2))


@st.composite
def toml_cases(draw, sft_cache: str):
    """`train --config FILE`: a TOML file of settings keys (and [objective] keys) with values of every TOML type."""
    b = Builder(draw, ["train", "--objective", "opo", "--config", "c.toml"])
    b.hostile.append(("--config", "--config"))              # a file-level problem names the option
    obj_keys = [f.name for f in dataclasses.fields(get("opo").config_cls)]
    lines, obj_lines = [], []
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(TRAIN_KEYS) | TEXT) if not b.chance(3) else "objective." + draw(
            st.sampled_from(obj_keys))
        value = draw(TOML_VALUES)
        name = key.removeprefix("objective.")
        b.hostile += [(key, key), (name, name), (name, toml_text(value))]
        (obj_lines if key.startswith("objective.") else lines).append(f"{draw_key(name)} = {toml_text(value)}")
    text = "\n".join(lines + (["[objective]", *obj_lines] if obj_lines else [])) + "\n"
    b.argv += ["--set", *MICRO, f"sft_cache={sft_cache}", "--out", "out", "--quiet"]
    if b.chance(5):
        b.argv.append("--list-settings")
    return b.case({"c.toml": text})


def draw_key(key: str) -> str:
    """A TOML key: bare where it can be, else quoted."""
    import json
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


SPEC_VALUES = st.one_of(VALUES, st.sampled_from(["١", "１", "٣.5", "1e300", "1e-300", "9" * 190, "-0", "true"]))


@st.composite
def variant_cases(draw, sft_cache: str):
    """`compare --objectives NAME(KEY=VALUE,...)`: objective specs with hostile keys, values and repeats."""
    b = Builder(draw, ["compare"])
    name = draw(st.sampled_from(sorted(available())) | TEXT)
    keys = [f.name for f in dataclasses.fields(get(name).config_cls)] if name in available() else ["mu"]
    pairs = []
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(keys + ["lr", "nope"]) | TEXT)
        value = draw(SPEC_VALUES)
        pairs.append(f"{key}={value}")
        b.hostile += [(key, key), (key, value)]
    if pairs and b.chance(2):
        pairs.append(pairs[0])                                  # the same key twice
    spec = name + (f"({','.join(pairs)})" if pairs or b.chance(2) else "")
    b.hostile += [("--objectives", spec), (name, name)]
    b.argv += ["--objectives", spec, "--seeds", "1", "--steps", "1", "--out", "out", "--quiet",
               "--set", *MICRO, f"sft_cache={sft_cache}"]
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
        for name, text in case.files.items():
            (ws / name).write_text(text)
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
        if rc == 2:       # progress lines ('bandit approx: running with ...') may come first; one error line, last
            lines = [line for line in err_text.rstrip("\n").split("\n") if line.startswith("opo-theory: error: ")]
            assert len(lines) == 1 and err_text.rstrip("\n").endswith(lines[0]), (case.argv, err_text[-2000:])
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


# Default-suite budget per command (examples); the slow variant multiplies each by SLOW_FACTOR.
EXAMPLES = {"top-level": 100, "claims": 100, "bandit": 200, "train": 150, "compare": 100, "figures": 150,
            "toml": 60, "variants": 40}
SLOW_FACTOR = 10


def strategy_for(command: str, sft_cache: str):
    return {"top-level": top_level_cases(), "claims": claims_cases(), "bandit": bandit_cases(),
            "train": train_cases(sft_cache), "compare": compare_cases(sft_cache),
            "figures": figures_cases(), "toml": toml_cases(sft_cache), "variants": variant_cases(sft_cache)}[command]


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
    """Every expression opo_theory.lm.tasks.arithmetic._expression can draw at ``level`` (written out independently)."""
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


# ---------------------------------------------------------------- damaged run files, broken model directories
DAMAGE = ("truncate", "flip", "delete-line", "duplicate-line", "swap-lines", "string-value", "remove", "empty")


def damage_file(path: Path, how: str, rng) -> None:
    """One kind of damage a disk, an editor or a half-copied directory can do to ``path``."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    if how == "truncate":
        path.write_bytes(data[:rng.randrange(max(1, len(data)))])
    elif how == "flip" and data:
        i = rng.randrange(len(data))
        path.write_bytes(data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:])
    elif how in ("delete-line", "duplicate-line", "swap-lines") and len(lines) > 1:
        i = rng.randrange(len(lines) - 1)
        new = {"delete-line": lines[:i] + lines[i + 1:], "duplicate-line": lines[:i + 1] + lines[i:],
               "swap-lines": lines[:i] + [lines[i + 1], lines[i]] + lines[i + 2:]}[how]
        path.write_bytes(b"".join(new))
    elif how == "string-value":
        path.write_bytes(data.replace(b": 0.", b': "0.', 1).replace(b'"0.', b'"0."', 1) if b": 0." in data else data)
    elif how == "remove":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory, sft_cache):
    from opo_theory.lm.experiments.compare import compare

    out = tmp_path_factory.mktemp("fuzz-compare") / "out"
    settings = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=0", "pool_size=60", "val_size=8",
                "train_level=1", "ood_level=2", "val_every=2", "prompts_per_step=2", "group_size=2", "max_new=4"]
    compare(["opo", "grpo"], 2, "cpu-tiny", out, [*settings, f"sft_cache={sft_cache}"], steps=3, quiet=True)
    return out


def run_quietly(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(argv)
    except BaseException as exc:          # noqa: BLE001 - any escape is the failure being tested for
        raise AssertionError(f"{type(exc).__name__} escaped main({argv!r}): {exc}") from exc
    return rc, err.getvalue()


def fuzz_damaged_runs(compare_out, n: int, derandomize: bool = True) -> None:
    """`figures --runs` and `compare --resume`'s summary on a compare output with one file damaged: exit 0 or
    one error line naming the file (never a traceback, never a silently shortened curve)."""
    import random
    import shutil

    files = sorted(str(p.relative_to(compare_out)) for p in compare_out.rglob("*")
                   if p.is_file() and p.suffix in (".json", ".jsonl") and not p.name.startswith("summary.md"))
    tally: dict[int, int] = {}

    @settings(max_examples=n, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(files), st.sampled_from(DAMAGE), st.integers(0, 2**32 - 1))
    def check(name, how, seed):
        with tempfile.TemporaryDirectory() as ws:
            copy = Path(ws) / "runs"
            shutil.copytree(compare_out, copy)
            damage_file(copy / name, how, random.Random(seed))
            rc, err = run_quietly(["figures", "fig8-entropy", "--runs", str(copy), "--out", str(Path(ws) / "f")])
            tally[rc] = tally.get(rc, 0) + 1
            errors = [line for line in err.splitlines() if line.startswith("opo-theory: error: ")]
            assert rc in (0, 2) and len(errors) == (rc == 2), (name, how, err[-2000:])
            if rc == 2:
                assert Path(name).name in errors[0] or "runs" in errors[0], (name, how, errors[0])

    check()
    print(f"\nfuzz damaged runs: {sum(tally.values())} damaged copies, exit codes {tally}")


def test_fuzz_damaged_run_files(compare_out):
    fuzz_damaged_runs(compare_out, 20)


@pytest.mark.slow
def test_fuzz_damaged_run_files_many(compare_out):
    fuzz_damaged_runs(compare_out, 400, derandomize=False)


HF_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings",
             "architectures", "model_type", "intermediate_size")
JSON_VALUES = st.one_of(st.integers(-5, 3), st.integers(10**6, 10**20), st.floats(allow_nan=False), st.booleans(),
                        st.none(), TEXT, st.lists(TEXT, max_size=2))


def fuzz_broken_models(tmp_path_factory, n: int, derandomize: bool = True) -> None:
    """An hf: directory with one file damaged or one config.json field replaced: load_hf_policy succeeds or
    raises one ValueError line (the checks of opo_theory.lm.models.hf_check, then transformers' own)."""
    import json
    import random
    import shutil

    pytest.importorskip("transformers")
    from opo_theory.lm.models.hf import load_hf_policy
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("fuzz-hf") / "m", "llama", layers=1, width=16, heads=2,
                             vocab_size=40)
    names = sorted(p.name for p in model.iterdir() if p.is_file())
    tally = {"loaded": 0, "refused": 0}

    @settings(max_examples=n, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(names), st.sampled_from(DAMAGE + ("field",) * 4), st.sampled_from(HF_FIELDS), JSON_VALUES,
           st.integers(0, 2**32 - 1))
    def check(name, how, field, value, seed):
        with tempfile.TemporaryDirectory() as ws:
            copy = Path(ws) / "m"
            shutil.copytree(model, copy)
            if how == "field":
                config = json.loads((copy / "config.json").read_text())
                (copy / "config.json").write_text(json.dumps({**config, field: value}))
            else:
                damage_file(copy / name, how, random.Random(seed))
            try:
                load_hf_policy(copy)
                tally["loaded"] += 1
            except ValueError as exc:
                assert "\n" not in str(exc).strip(), str(exc)
                tally["refused"] += 1

    check()
    print(f"\nfuzz broken hf directories: {sum(tally.values())} damaged copies: {tally}")


def test_fuzz_broken_model_directories(tmp_path_factory):
    fuzz_broken_models(tmp_path_factory, 25)


@pytest.mark.slow
def test_fuzz_broken_model_directories_many(tmp_path_factory):
    fuzz_broken_models(tmp_path_factory, 300, derandomize=False)
