"""The run directory (opo_theory.lm.training.run_dir): a resume that changes --steps records them in config.json together
with the checkpoint's checksum of it (a kill between the two writes still resumes); a refused resume names each
differing setting with its stored and requested value and the options that resume; a finished run resumed
again says its files are unchanged and leaves them so; no module spells a run file's name but run_dir."""

import ast
import json
from pathlib import Path

import pytest

from opo_theory.cli import main
from opo_theory.lm.training import run_dir
from opo_theory.lm.training.config import make_config
from opo_theory.lm.training.run_dir import CONFIG, RUN_FILES, SUMMARY, RunDir, RunDirError

MICRO = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=20", "pool_size=300", "val_size=20",
         "train_level=2", "ood_level=3", "val_every=2", "sft_batch=32", "checkpoint_every=2", "prompts_per_step=4",
         "sft_eval_every=10"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sft")


def train(out, cache, steps, *extra):
    return main(["train", "--objective", "grpo", "--steps", str(steps), "--out", str(out), "--set", *MICRO,
                 f"sft_cache={cache}", *extra])


def recorded_steps(out) -> int:
    return json.loads((out / CONFIG).read_text())["config"]["steps"]


def test_resume_with_more_steps_records_them_with_the_checkpoint(cache, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(out, cache, 3) == 0
    capsys.readouterr()
    assert train(out, cache, 5, "--resume") == 0
    err = capsys.readouterr().err
    assert f"[grpo seed 0] resumed {out} at step 3/5 (its last checkpoint); config.json's steps 3 -> 5" in err
    assert "done, 5/5 steps" in err and "5/3" not in err and "3/3" not in err
    assert recorded_steps(out) == 5 and len((out / "metrics.jsonl").read_text().splitlines()) == 5
    assert RunDir(out).verified_checkpoint()["step"] == 5        # config.json and the checkpoint agree


def resumed_after_three_steps(out, cache, capsys, steps: int):
    """A 3-step run resumed with --steps ``steps``: its captured output; the run's files are byte-for-byte unchanged."""
    assert train(out, cache, 3) == 0
    before = {name: (out / name).read_bytes() for name in RUN_FILES}
    capsys.readouterr()
    assert train(out, cache, steps, "--resume") == 0
    captured = capsys.readouterr()
    assert {name: (out / name).read_bytes() for name in RUN_FILES} == before
    return captured


def test_fewer_steps_than_done_trains_nothing_and_changes_nothing(cache, tmp_path, capsys):
    out = tmp_path / "run"
    captured = resumed_after_three_steps(out, cache, capsys, 2)
    assert (f"{out} already has 3 steps, more than the 2 asked for (a run is never shortened): nothing to train; "
            "its files are unchanged") in captured.err
    assert "3/2" not in captured.err and "done, 3 steps" in captured.err
    assert captured.out.strip() == f"unchanged: {out / 'metrics.jsonl'} (the run had already finished)"


def test_a_finished_run_resumed_with_its_steps_says_its_files_are_unchanged(cache, tmp_path, capsys):
    out = tmp_path / "run"
    captured = resumed_after_three_steps(out, cache, capsys, 3)
    assert f"{out} already finished (3/3 steps): nothing to train; its files are unchanged" in captured.err
    assert "wrote" not in captured.out and captured.out.startswith("unchanged: ")


def test_a_kill_between_the_checkpoint_and_config_json_still_resumes(cache, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(out, cache, 3, "--quiet") == 0
    run = RunDir(out)

    def killed(path, text):
        raise KeyboardInterrupt                 # the process dies after the checkpoint, before config.json
    monkeypatch.setattr(run_dir, "write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        run.set_steps(5, run.verified_checkpoint())
    monkeypatch.undo()
    assert recorded_steps(out) == 3 and run.verified_checkpoint()["step"] == 3     # the old config.json accepted
    assert train(out, cache, 5, "--resume", "--quiet") == 0
    assert recorded_steps(out) == 5 and run.verified_checkpoint()["step"] == 5


def test_a_config_json_edited_otherwise_is_still_refused(cache, tmp_path):
    out = tmp_path / "run"
    assert train(out, cache, 3, "--quiet") == 0
    run = RunDir(out)
    run.set_steps(5, run.verified_checkpoint())
    record = json.loads(run.config.read_text())
    record["config"]["steps"] = 7                  # neither the bytes the checkpoint was saved with nor the new ones
    run.config.write_text(json.dumps(record))
    with pytest.raises(RunDirError, match=r"was saved with a different config\.json"):
        run.verified_checkpoint()


def test_a_refused_resume_names_stored_and_requested_values_and_how_to_resume(cache, tmp_path):
    out = tmp_path / "run"
    assert train(out, cache, 3, "--quiet") == 0
    stored = make_config("grpo", "cpu-tiny", 0, [*MICRO, f"sft_cache={cache}"], 3, None)
    other = make_config("grpo", "cpu-tiny", 1, [*MICRO, f"sft_cache={cache}", f"lr={stored.lr * 10}",
                                                  "objective.eps_low=0.1"], 9, None)
    with pytest.raises(RunDirError) as refused:
        RunDir(out).check(other, resume=True)
    text = str(refused.value)
    assert "\n" not in text
    assert f"lr: {stored.lr} stored, {stored.lr * 10} requested" in text
    assert "seed: 0 stored, 1 requested" in text and "objective_config: {} stored, {'eps_low': 0.1} requested" in text
    assert f"pass the stored values (--set lr={stored.lr}, no objective.KEY=VALUE setting, --seed 0) with --resume" \
        in text
    assert "--steps N extends the run to N steps" in text and "steps:" not in text     # steps may differ
    assert RunDir(out).check(stored, resume=True) is True


def string_literals(path: Path):
    """(line, text) of every plain string constant and every f-string of a module (docstrings aside)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef,
                  ast.ClassDef)) and n.body and isinstance(n.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, ast.unparse(node)


@pytest.mark.parametrize("module", ["opo_theory/lm/training/trainer.py", "opo_theory/lm/experiments/compare.py", "opo_theory/lm/experiments/audit.py",
                                    "opo_theory/figures/runs.py", "opo_theory/figures/source.py",
                                    "opo_theory/integrations/trl.py", "opo_theory/integrations/trl_run.py",
                                    "paper_repro/report.py"])
def test_run_file_names_are_spelled_only_in_run_dir(module):
    names = (*RUN_FILES, SUMMARY, run_dir.AUDIT)
    found = [(line, text) for line, text in string_literals(ROOT / module)
             if text in names or "seed{" in text]
    assert not found, f"{module} spells run-directory names itself (use opo_theory.lm.training.run_dir): {found}"
