"""Reliability: loading a file never runs code; a resume verifies what it resumes or refuses in one line naming
the file; writes never touch a file the toolkit did not create; the SFT cache key covers what the warm-up
reads. Each test reproduces a finding of the reliability probe (it failed on the code before the fix)."""

import dataclasses
import inspect
import json
import os
import pickle
import re
import shutil

import pytest
import torch

from opo_theory.io import read_jsonl, remove_stale_temporaries
from opo_theory.lm.training.checkpoint import load_state, save_state, state_digest
from opo_theory.lm.training.config import RL_ONLY_FIELDS, TrainConfig, make_config
from opo_theory.lm.training.sft import task_pools, warm_start
from opo_theory.lm.training.trainer import start_run

TINY = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=0", "pool_size=60", "val_size=8", "train_level=1",
        "ood_level=2", "val_every=2", "checkpoint_every=2", "prompts_per_step=2", "group_size=2", "max_new=4"]
MARKER = "opo-reliability-payload-ran"


class Payload:
    """A pickle that runs a command when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_payloads(path, marker):
    """Both ways a crafted file reaches torch.load: a torch.save zip and a bare pickle."""
    torch.save({"model": Payload(marker), "step": 1}, path)
    return [path.read_bytes(), pickle.dumps(Payload(marker))]


def tiny_run(root, name="run", steps=4, seed=0, objective="opo", extra=()):
    cfg = make_config(objective, "cpu-tiny", seed, TINY + [f"sft_cache={root / 'sft'}", *extra], steps=steps)
    start_run(cfg, root / name, quiet=True).run()
    return cfg, root / name


def resume(cfg, out):
    return start_run(cfg, out, resume=True, quiet=True)


# ---------------------------------------------------------------------------------------- 1. loading runs no code
def test_a_pickle_payload_as_run_checkpoint_is_refused_unexecuted(tmp_path):
    cfg, out = tiny_run(tmp_path, steps=2)
    marker = tmp_path / MARKER
    for blob in write_payloads(out / "checkpoint.pt", marker):
        (out / "checkpoint.pt").write_bytes(blob)
        with pytest.raises(ValueError, match=r"checkpoint\.pt was refused"):
            resume(cfg, out)
    assert not marker.exists()


def test_a_pickle_payload_as_audit_checkpoint_is_refused_unexecuted(tmp_path):
    from opo_theory.lm.experiments.audit import audit_config, load_policy

    cfg, out = tiny_run(tmp_path, steps=2)
    marker = tmp_path / MARKER
    for blob in write_payloads(out / "checkpoint.pt", marker):
        (out / "checkpoint.pt").write_bytes(blob)
        audit_cfg = audit_config("cpu-tiny", None, None, str(out))
        with pytest.raises(ValueError, match=r"checkpoint\.pt was refused"):
            load_policy(audit_cfg, task_pools(audit_cfg), "sft", str(out), quiet=True)
    assert not marker.exists()


def test_a_pickle_payload_as_sft_cache_entry_is_refused_unexecuted(tmp_path):
    cfg = make_config("opo", "cpu-tiny", 0, [*TINY, "sft_max_steps=2", "sft_eval_every=1",
                                              f"sft_cache={tmp_path}"])
    path = tmp_path / f"sft-{cfg.sft_key()}.pt"
    marker = tmp_path / MARKER
    for blob in write_payloads(path, marker):
        path.write_bytes(blob)
        with pytest.raises(ValueError, match="was refused"):
            warm_start(cfg, task_pools(cfg), quiet=True)
    assert not marker.exists()


def test_a_checkpoint_with_flipped_bytes_is_refused(tmp_path):
    """64 flipped bytes inside an optimizer moment (the probe's case) and 20 random flips anywhere: each is
    refused, or (padding of the zip) leaves the loaded state bit-identical."""
    import random

    cfg, out = tiny_run(tmp_path, steps=2)
    good = (out / "checkpoint.pt").read_bytes()
    state = load_state(out / "checkpoint.pt")
    moment = next(iter(state["opt"]["state"].values()))["exp_avg"]
    at = good.find(moment.numpy().tobytes())
    assert at > 0
    bad = bytearray(good)
    bad[at:at + 64] = bytes(b ^ 0xFF for b in bad[at:at + 64])
    (out / "checkpoint.pt").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"checkpoint\.pt is damaged: its contents do not match the SHA-256"):
        resume(cfg, out)
    rng, digest = random.Random(0), state_digest(state)
    for _ in range(20):
        bad = bytearray(good)
        i = rng.randrange(len(bad))
        bad[i] ^= 1 << rng.randrange(8)
        (out / "checkpoint.pt").write_bytes(bytes(bad))
        try:
            assert state_digest(load_state(out / "checkpoint.pt")) == digest
        except ValueError as exc:
            assert "checkpoint.pt" in str(exc) and "\n" not in str(exc)


def test_a_state_holding_anything_but_tensors_and_plain_values_is_not_saved(tmp_path):
    with pytest.raises(TypeError, match="not Payload"):
        save_state(tmp_path / "x.pt", {"x": Payload("never")})
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------------------------------- 2. resume integrity
def edit_rows(out, change):
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    (out / "metrics.jsonl").write_text("".join(change(lines)))


@pytest.mark.parametrize("change, message", [
    (lambda rows: [rows[0], "{garbled\n", *rows[2:]], r"metrics\.jsonl line 2 is not valid JSON"),
    (lambda rows: [rows[0], *rows[2:]], r"metrics\.jsonl line 2: expected step 1, found 2"),
    (lambda rows: [rows[0], rows[0], *rows[1:]], r"metrics\.jsonl line 2: expected step 1, found 0"),
    (lambda rows: [rows[1], rows[0], *rows[2:]], r"metrics\.jsonl line 1: expected step 0, found 1"),
    (lambda rows: [*rows[:4], "[]\n", *rows[4:]], r"metrics\.jsonl line 5 is not a JSON object"),
    (lambda rows: [rows[0].replace('"step": 0', '"step": 0, "x": 1'), *rows[1:]],
     r"metrics\.jsonl: the rows of steps 0-3 differ from those checkpoint\.pt was saved with"),
], ids=["garbled", "deleted", "duplicated", "swapped", "garbled-after-checkpoint", "edited"])
def test_damaged_metrics_rows_are_refused_and_left_as_they_are(tmp_path, change, message):
    cfg, out = tiny_run(tmp_path, steps=4)
    rows_file = out / "metrics.jsonl"
    edit_rows(out, lambda rows: [*rows, '{"step": 4}\n'])   # as if killed after step 4's row (checkpoint at 4)
    edit_rows(out, change)
    cfg = dataclasses.replace(cfg, steps=6)
    damaged = rows_file.read_bytes()
    with pytest.raises(ValueError, match=message):
        resume(cfg, out)
    assert rows_file.read_bytes() == damaged                # nothing deleted


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    cfg, out = tiny_run(tmp_path, steps=2, seed=0)
    _, other = tiny_run(tmp_path, "other", steps=2, seed=1)
    shutil.copy(other / "checkpoint.pt", out / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"checkpoint\.pt was saved with a different config\.json"):
        resume(cfg, out)


def test_a_run_without_its_config_json_is_refused_not_restarted(tmp_path):
    cfg, out = tiny_run(tmp_path, steps=2)
    (out / "config.json").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"is not empty and holds no config\.json \(it has checkpoint\.pt, "):
        resume(cfg, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_config_json_records_every_objective_hyperparameter_and_a_changed_default_is_refused(tmp_path, monkeypatch):
    from opo_theory.objectives.opo import OPOConfig

    cfg, out = tiny_run(tmp_path, steps=2, extra=["objective.alpha=0.3"])
    resolved = json.loads((out / "config.json").read_text())["objective_resolved"]
    assert resolved == {f.name: (0.3 if f.name == "alpha" else f.default) for f in dataclasses.fields(OPOConfig)}
    init = OPOConfig.__init__
    names = [p.name for p in inspect.signature(init).parameters.values() if p.default is not inspect.Parameter.empty]
    changed = tuple(2.5 if n == "mu" else d for n, d in zip(names, init.__defaults__, strict=True))
    monkeypatch.setattr(init, "__defaults__", changed)        # a new default for mu in the code
    with pytest.raises(ValueError, match=r"objective's hyperparameters changed since the run started \(mu 1\.0 -> 2\.5"):
        resume(cfg, out)


def test_a_config_json_without_resolved_hyperparameters_is_refused(tmp_path):
    cfg, out = tiny_run(tmp_path, steps=2)
    record = json.loads((out / "config.json").read_text())
    del record["objective_resolved"]
    (out / "config.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="records no resolved objective hyperparameters"):
        resume(cfg, out)


def test_a_config_json_recording_the_retired_normalizer_still_resumes(tmp_path, monkeypatch):
    # runs started before normalizer moved from the objective configs to PolicyBatch record it (at None)
    from opo_theory.lm.training import run_dir

    resolved = run_dir.resolved_objective
    for name, value in (("old", None), ("set", 4.0)):
        with monkeypatch.context() as m:
            m.setattr(run_dir, "resolved_objective", lambda cfg, v=value: {**resolved(cfg), "normalizer": v})
            cfg, out = tiny_run(tmp_path, name=name, steps=2)
        assert json.loads((out / "config.json").read_text())["objective_resolved"]["normalizer"] == value
        assert "normalizer" not in resolved(cfg)
        if value is None:
            resume(cfg, out)
        else:                                      # a set value was another objective: refused
            with pytest.raises(ValueError, match=r"hyperparameters changed since the run started \(normalizer 4\.0"):
                resume(cfg, out)


def test_resume_removes_only_its_own_temporaries(tmp_path):
    cfg, out = tiny_run(tmp_path, steps=4)
    ours = [out / ".checkpoint.pt.ab3d_f9x.tmp", out / ".metrics.jsonl.k2j4h5g6.tmp"]
    theirs = [out / ".notes.tmp", out / ".checkpoint.pt.mine.tmp", out / ".metrics.jsonl.tmp"]
    for p in ours + theirs:
        p.write_text("x")
    resume(cfg, out)
    assert not any(p.exists() for p in ours) and all(p.read_text() == "x" for p in theirs)
    assert remove_stale_temporaries(tmp_path / "missing", "x") == []


def test_an_out_that_is_a_symlink_or_a_users_directory_is_refused_untouched(tmp_path):
    cfg = make_config("opo", "cpu-tiny", 0, TINY + [f"sft_cache={tmp_path / 'sft'}"], steps=2)
    users = tmp_path / "users"
    users.mkdir()
    (users / "metrics.jsonl").write_text("my notes\n")
    (users / "checkpoint.pt").write_bytes(b"my weights")
    with pytest.raises(ValueError, match=r"is not empty and holds no config\.json"):
        start_run(cfg, users, quiet=True)
    (tmp_path / "link").symlink_to(tmp_path / "empty", target_is_directory=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a symbolic link"):
        start_run(cfg, tmp_path / "link", quiet=True)
    _, out = tiny_run(tmp_path, "linked", steps=2)
    (out / "pre_rl.json").rename(tmp_path / "pre_rl.json")
    (out / "pre_rl.json").symlink_to(tmp_path / "pre_rl.json")
    with pytest.raises(ValueError, match=r"pre_rl\.json is not a plain file"):
        resume(cfg, out)
    assert (users / "metrics.jsonl").read_text() == "my notes\n" and not list((tmp_path / "empty").iterdir())


def test_audit_resume_refuses_a_foreign_partial_and_removes_its_own_temporaries(tmp_path):
    from opo_theory.lm.experiments.audit import check_audit_dir

    partial = tmp_path / "partial"
    partial.mkdir()
    names = {"seed0-opo.json", "seed1-opo.json"}
    (partial / "seed0-opo.json").write_text(json.dumps({"key": "k", "data": {}}))
    (partial / ".seed1-opo.json.abcd1234.tmp").write_text("half")
    (partial / ".mine.tmp").write_text("x")
    check_audit_dir(tmp_path, "k", names, resume=True)
    assert not (partial / ".seed1-opo.json.abcd1234.tmp").exists() and (partial / ".mine.tmp").exists()
    (partial / "seed1-opo.json").write_text(json.dumps({"key": "other", "data": {}}))
    with pytest.raises(ValueError, match=r"seed1-opo\.json belongs to a different audit"):
        check_audit_dir(tmp_path, "k", names, resume=True)
    (partial / "seed1-opo.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"seed1-opo\.json is not readable JSON"):
        check_audit_dir(tmp_path, "k", names, resume=True)


def test_read_jsonl_leaves_out_only_a_half_written_last_row(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"st')
    assert read_jsonl(path, counter="step") == [{"step": 0}, {"step": 1}]
    path.write_text('{"step": 0}\n{"st\n{"step": 1}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl line 2 is not valid JSON"):
        read_jsonl(path)


# ---------------------------------------------------------------------------------------- the SFT cache key
def other_value(f: dataclasses.Field, value):
    """A different valid value for one TrainConfig field (from its range)."""
    special = {"model": None, "sft_cache": "elsewhere", "device": "cuda", "n_head": 1, "n_embd": 32,
               "val_size": 7, "pool_size": 59,
               "report_to": "tensorboard", "dataset_sha256": "0" * 64,
               "dataset": os.path.join(os.path.dirname(__file__), os.pardir, "examples", "data", "sums.jsonl")}
    if f.name in special:
        return special[f.name]
    rng = f.metadata.get("range")
    if hasattr(rng, "allowed"):
        return next(v for v in rng.allowed() if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.5
    raise AssertionError(f"no other value for {f.name}")


def test_the_sft_key_changes_with_every_field_the_warm_up_may_read():
    base = make_config("opo", "cpu-tiny", 0, TINY)
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in RL_ONLY_FIELDS and f.name != "model"]
    assert {"ood_level", "val_size", "train_level", "pool_size", "max_new", "n_layer", "sft_lr"} <= {f.name for f in fields}
    for f in fields:
        changed = dataclasses.replace(base, **{f.name: other_value(f, getattr(base, f.name))})
        assert changed.sft_key() != base.sft_key(), f.name
    for f in dataclasses.fields(TrainConfig):
        name = f.name
        if name not in RL_ONLY_FIELDS or name == "objective_config":
            continue
        value = other_value(f, getattr(base, name)) if name not in ("objective", "preset") else getattr(base, name)
        try:
            changed = dataclasses.replace(base, **{name: value})
        except ValueError:
            continue                          # a value that does not fit the others: nothing to compare
        assert changed.sft_key() == base.sft_key(), name


class ReadLog:
    """A TrainConfig stand-in that records which fields are read."""

    def __init__(self, cfg):
        object.__setattr__(self, "_cfg", cfg)
        object.__setattr__(self, "read", set())

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._cfg, name)


def test_the_warm_up_reads_no_field_left_out_of_its_key(tmp_path):
    """task_pools + warm_start (a real two-step SFT, evaluated) read only fields that are in the key."""
    cfg = make_config("opo", "cpu-tiny", 0, [*TINY, "sft_max_steps=2", "sft_eval_every=1", f"sft_cache={tmp_path}"])
    log = ReadLog(cfg)
    warm_start(log, task_pools(log), quiet=True)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert log.read & fields and not (log.read & fields) - {"sft_cache"} & RL_ONLY_FIELDS


def test_a_warm_cache_with_a_changed_ood_level_trains_a_new_warm_up(tmp_path):
    settings = [*TINY, "sft_max_steps=2", "sft_eval_every=1", f"sft_cache={tmp_path}"]
    first = make_config("opo", "cpu-tiny", 0, settings)
    warm_start(first, task_pools(first), quiet=True)
    second = make_config("opo", "cpu-tiny", 0, [*settings, "ood_level=3", "val_size=5"])
    warm_start(second, task_pools(second), quiet=True)
    assert len(list(tmp_path.glob("sft-*.pt"))) == 2


def test_a_cached_policy_that_does_not_fit_the_model_is_one_line(tmp_path):
    settings = [*TINY, "sft_max_steps=2", "sft_eval_every=1", f"sft_cache={tmp_path}"]
    cfg = make_config("opo", "cpu-tiny", 0, settings)
    warm_start(cfg, task_pools(cfg), quiet=True)
    wider = make_config("opo", "cpu-tiny", 0, [*settings, "n_embd=32"])
    shutil.copy(tmp_path / f"sft-{cfg.sft_key()}.pt", tmp_path / f"sft-{wider.sft_key()}.pt")
    with pytest.raises(ValueError, match=r"sft-\w+\.pt does not fit the GPT: size mismatch") as info:
        warm_start(wider, task_pools(wider), quiet=True)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------- 3-4. one-line errors, extremes
def cli(capsys, *argv):
    from opo_theory.cli import main

    rc = main(list(argv))
    return rc, capsys.readouterr().err


TOML_CASES = {   # file text -> what the one-line error must say (each was a traceback or a silent coercion)
    "x = " + "[" * 500 + "]" * 500: "nests arrays or tables too deeply",
    'sft_cache = ["a", "b"]': "sft_cache of train: expected a string, got a,b (a TOML array)",
    "sft_cache = 1979-05-27": "sft_cache of train: a TOML date or time is not a setting value",
    "bf16 = 1": "bf16 of train: expected true or false, got 1 (a TOML integer)",
    '"lr=0.1" = 1': "unknown setting 'lr=0.1'",
    'steps = "3"': "steps of train: expected an integer, got '3' (a TOML string)",
    "[objective]\nmu = true": "objective.mu of objective opo: expected a number, got true (a TOML boolean)",
    "a.b.c.d = 1": "nests tables deeper than [objective]",
}


@pytest.mark.parametrize("text", TOML_CASES, ids=range(len(TOML_CASES)))
def test_toml_values_keep_their_type_and_errors_are_one_line(text, tmp_path, capsys):
    (tmp_path / "c.toml").write_text(text)
    rc, err = cli(capsys, "train", "--objective", "opo", "--config", str(tmp_path / "c.toml"), "--list-settings")
    assert rc == 2 and len(err.splitlines()) == 1 and TOML_CASES[text] in err, err


def test_typed_toml_values_that_fit_are_taken(tmp_path, capsys):
    (tmp_path / "c.toml").write_text("lr = 1\nbf16 = true\n[objective]\nmu = 2\ndelta_clamp = 5\n")
    rc, err = cli(capsys, "train", "--objective", "opo", "--config", str(tmp_path / "c.toml"), "--list-settings")
    assert rc == 0, err


@pytest.mark.parametrize("setting", ["lr=١", "steps=٣", "objective.mu=１", "seed=1", "objective.delta_clamp=٥"])
def test_non_ascii_digits_are_not_numbers(setting, tmp_path, capsys):
    rc, err = cli(capsys, "train", "--objective", "opo", "--out", str(tmp_path / "o"), "--set", setting,
                  "--list-settings")
    if setting == "seed=1":
        assert rc == 2 and "unknown setting 'seed'" in err        # the control case: seed has its own option
    else:
        assert rc == 2 and len(err.splitlines()) == 1 and setting.split("=")[0].removeprefix("objective.") in err


@pytest.mark.parametrize("setting, message", [
    ("objective.mu=1e300", r"mu must be 0 or between 1e-08 and 1e\+08"),
    ("objective.delta_clamp=" + "9" * 190, "delta_clamp must be 0 or between"),
    ("lr=1e308", r"lr must lie in \(0.0, 1.0\]"),
    ("sft_lr=1e300", r"sft_lr must lie in \(0.0, 1.0\]"),
    ("top_p=1e-300", r"top_p must lie in \[1e-06, 1.0\]"),
    ("temperature=1e-300", "temperature must be 0 \\(greedy\\) or at least 1e-06"),
    ("weight_decay=1e300", "lr x weight_decay must be below 1"),
])
def test_extreme_settings_are_refused_up_front_with_the_reason(setting, message):
    with pytest.raises(ValueError, match=message):
        make_config("opo", "cpu-tiny", 0, [setting])


@pytest.mark.parametrize("variant, message", [
    ("ipo(beta=1e-300)", "beta must be 0 or between"), ("dapo(eps_high=1e300)", "eps_high must be 0 or between"),
    ("opo(mu=1,mu=2)", "sets mu twice"), ("opo(mu=١)", "must be KEY=VALUE"),
])
def test_objective_specs_are_one_line_errors(variant, message, tmp_path, capsys):
    rc, err = cli(capsys, "compare", "--objectives", variant, "--out", str(tmp_path / "o"), "--set", *TINY)
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(message, err), err


def test_a_run_whose_optimizer_never_steps_is_an_error(tmp_path, monkeypatch):
    from opo_theory.lm.training.trainer import Trainer

    never = {"updated": 0.0, "grad/norm": None, "loss/total": None, "reward/mean": 0.0, "accuracy": 0.0}
    monkeypatch.setattr(Trainer, "rl_step", lambda self: dict(never))
    with pytest.raises(ValueError, match="no update was applied in 2 steps"):
        tiny_run(tmp_path, steps=2)


def test_diverged_weights_name_lr_instead_of_the_log_probs(tmp_path, monkeypatch):
    from opo_theory.lm.training.trainer import Trainer

    real = Trainer.rl_step

    def poisoned(self):
        with torch.no_grad():
            next(self.model.parameters()).fill_(float("nan"))
        return real(self)

    monkeypatch.setattr(Trainer, "rl_step", poisoned)
    with pytest.raises(ValueError, match=r"step 0: the policy's weights are no longer finite \(lr 0.0001"):
        tiny_run(tmp_path, steps=2)


# ---------------------------------------------------------------------------------------- damaged compare output
@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory):
    from opo_theory.lm.experiments.compare import compare

    root = tmp_path_factory.mktemp("compare")
    compare(["opo", "grpo"], 2, "cpu-tiny", root / "out", [*TINY, f"sft_cache={root / 'sft'}"], steps=3, quiet=True)
    return root / "out"


SUMMARY_DAMAGE = {
    "not json": (lambda s: "{not json", r"summary\.json is not readable JSON"),
    "seeds text": (lambda s: json.dumps({**s, "seeds": "2"}), r"summary\.json: 'seeds' must be a positive integer"),
    "no objectives": (lambda s: json.dumps({k: v for k, v in s.items() if k != "objectives"}),
                      r"summary\.json: 'objectives' must be a non-empty list"),
    "escaping run dir": (lambda s: json.dumps({**s, "run_dirs": {"opo": "../x", "grpo": "grpo"}}),
                         r"summary\.json: 'run_dirs' must map labels to directory names"),
    "a list": (lambda s: "[]", r"summary\.json: it is not a JSON object"),
}
ROW_DAMAGE = {
    "garbled": (lambda rows: [rows[0], "{garbled\n", *rows[2:]], r"metrics\.jsonl line 2 is not valid JSON"),
    "deleted": (lambda rows: [rows[0], *rows[2:]], r"metrics\.jsonl line 2: expected step 1, found 2"),
    "wrong type": (lambda rows: [rows[0].replace('"accuracy": ', '"accuracy": "high", "x": '), *rows[1:]],
                   r"metrics\.jsonl line 1: accuracy is 'high', not a number"),
}


def figures_on(directory, tmp_path, capsys):
    """(exit code, its error line): figures prints one progress line before a run is read."""
    rc, err = cli(capsys, "figures", "fig8-entropy", "--runs", str(directory), "--out", str(tmp_path / "figs"))
    errors = [line for line in err.splitlines() if line.startswith("opo-theory: error:")]
    assert len(errors) == (rc == 2) and "Traceback" not in err, err
    return rc, "".join(errors)


@pytest.mark.parametrize("damage", SUMMARY_DAMAGE)
def test_figures_runs_refuses_a_damaged_summary_in_one_line(damage, compare_dir, tmp_path, capsys):
    copy = tmp_path / "runs"
    shutil.copytree(compare_dir, copy)
    change, message = SUMMARY_DAMAGE[damage]
    (copy / "summary.json").write_text(change(json.loads((copy / "summary.json").read_text())))
    rc, err = figures_on(copy, tmp_path, capsys)
    assert rc == 2 and re.search(message, err), err


@pytest.mark.parametrize("damage", ROW_DAMAGE)
def test_figures_runs_and_compare_refuse_damaged_rows_instead_of_cutting_a_curve(damage, compare_dir, tmp_path,
                                                                                 capsys):
    from opo_theory.lm.experiments.compare import summarize

    copy = tmp_path / "runs"
    shutil.copytree(compare_dir, copy)
    change, message = ROW_DAMAGE[damage]
    edit_rows(copy / "grpo" / "seed1", change)
    rc, err = figures_on(copy, tmp_path, capsys)
    assert rc == 2 and re.search(message, err), err
    with pytest.raises(ValueError, match=message):
        summarize(copy, ["opo", "grpo"], 2, {"opo": "opo", "grpo": "grpo"})


def test_figures_runs_draws_the_undamaged_compare(compare_dir, tmp_path, capsys):
    rc, err = figures_on(compare_dir, tmp_path, capsys)
    assert rc == 0, err


# ---------------------------------------------------------------------------------------- broken hf: directories
@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    pytest.importorskip("transformers")
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("hf") / "llama", "llama", layers=1, width=16, heads=2,
                            vocab_size=40)


def edit_json(path, change):
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def random_bytes(path):
    path.write_bytes(os.urandom(path.stat().st_size))


HF_DAMAGE = {
    "truncated weights": (lambda d: truncate(d / "model.safetensors"), r"model\.safetensors holds \d+ bytes"),
    "random weights": (lambda d: random_bytes(d / "model.safetensors"), r"model\.safetensors is not a safetensors"),
    "vocab mismatch": (lambda d: edit_json(d / "config.json", lambda c: {**c, "vocab_size": c["vocab_size"] + 7}),
                       r"weights' model\.embed_tokens\.weight has shape \[\d+, 16\], config\.json says"),
    "width mismatch": (lambda d: edit_json(d / "config.json", lambda c: {**c, "hidden_size": 32}),
                       "weights and config do not belong together"),
    "tokenizer beyond vocab": (lambda d: edit_json(d / "tokenizer.json", lambda t: {
        **t, "added_tokens": [*t["added_tokens"], {**t["added_tokens"][0], "id": 500, "content": "<x>"}]}),
        r"tokenizer\.json has token id 500, beyond config\.json's vocab_size"),
    "not causal": (lambda d: edit_json(d / "config.json", lambda c: {**c, "architectures": ["BertForMaskedLM"]}),
                   "BertForMaskedLM is not a causal language model"),
    "negative positions": (lambda d: edit_json(d / "config.json", lambda c: {**c, "max_position_embeddings": -5}),
                           "max_position_embeddings must be a positive integer, got -5"),
    "config not json": (lambda d: (d / "config.json").write_text("{"), r"config\.json is not readable JSON"),
}


@pytest.mark.parametrize("damage", HF_DAMAGE)
def test_a_broken_hf_directory_is_one_line_naming_the_file(damage, tiny_hf, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_hf, model)
    change, message = HF_DAMAGE[damage]
    change(model)
    rc, err = cli(capsys, "train", "--objective", "grpo", "--model", f"hf:{model}", "--out", str(tmp_path / "o"),
                  "--steps", "1", "--set", "sft_max_steps=0", "prompts_per_step=2", "group_size=2", "val_size=4",
                  "pool_size=40", "train_level=1", "ood_level=2", f"sft_cache={tmp_path / 'sft'}", "--quiet")
    assert rc == 2 and len(err.splitlines()) == 1 and re.search(message, err), err


def test_the_intact_tiny_hf_directory_passes_the_checks(tiny_hf):
    from opo_theory.lm.models.hf_check import check_hf_dir

    check_hf_dir(tiny_hf)


def test_the_trl_engine_does_not_resume_and_never_writes_into_a_used_directory(tiny_hf, tmp_path, capsys):
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    base = ["train", "--engine", "trl", "--objective", "grpo", "--model", f"hf:{tiny_hf}", "--steps", "1"]
    rc, err = cli(capsys, *base, "--out", str(users))
    assert rc == 2 and "is not empty (it has notes.txt): --engine trl starts every run afresh" in err, err
    rc, err = cli(capsys, *base, "--out", str(tmp_path / "new"), "--resume")
    assert rc == 2 and "--resume does not apply to --engine trl" in err, err
    assert (users / "notes.txt").read_text() == "mine" and list(users.iterdir()) == [users / "notes.txt"]


def test_a_bandit_objective_spec_setting_a_key_twice_is_refused(capsys):
    rc, err = cli(capsys, "bandit", "dynamics", "--objectives", "opo(mu=1,mu=2)")
    assert rc == 2 and err.strip().splitlines()[-1] == "opo-theory: error: objective opo sets mu twice", err
