"""Cache settings resolve the same wherever a command runs: a relative sft_cache is taken from the repository root
of a clone (from the current folder only when the package is installed outside one)."""

from __future__ import annotations

from pathlib import Path

from opo_theory import io


def test_relative_cache_is_the_clones_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert io.cache_dir("runs/sft-cache") == io.REPO_ROOT / "runs" / "sft-cache"
    assert io.cache_dir(tmp_path / "elsewhere") == tmp_path / "elsewhere"          # absolute: as given


def test_outside_a_clone_a_relative_cache_is_the_current_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "REPO_ROOT", tmp_path / "site-packages")               # no pyproject.toml there
    assert io.cache_dir("runs/sft-cache") == Path("runs/sft-cache")


def test_the_warm_up_and_compare_use_the_resolved_cache():
    """Every reader of sft_cache goes through cache_dir (a bare Path(cfg.sft_cache) would be cwd-relative)."""
    root = io.REPO_ROOT / "opo_theory"
    readers = [p for p in root.rglob("*.py") if "cfg.sft_cache" in p.read_text()]
    assert readers
    for path in readers:
        for line in path.read_text().splitlines():
            if "cfg.sft_cache" in line and "def " not in line:
                assert "cache_dir(cfg.sft_cache)" in line, f"{path.name}: {line.strip()}"


def test_the_revision_is_dirty_for_a_code_change_not_for_regenerated_artifacts(tmp_path):
    import subprocess

    from opo_theory.io import git_revision

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.json").write_text("1")
    (tmp_path / "REPORT.md").write_text("r")
    (tmp_path / "code.py").write_text("x = 1")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    clean = git_revision(tmp_path)
    assert len(clean) == 40 and not clean.endswith("-dirty")
    (tmp_path / "figures" / "a.json").write_text("2")          # a regenerated artifact
    (tmp_path / "REPORT.md").write_text("s")
    assert git_revision(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2")                 # a code change
    assert git_revision(tmp_path) == clean + "-dirty"
