"""The registry objectives inside TRL: conformance with TRL's own losses, invariance of loss, gradient and
logged metrics to the micro-batch split (accumulation, processes), the toolkit's metrics.jsonl, bad input."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
pytest.importorskip("datasets", reason="datasets (a trl dependency) is not installed")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).parent))
import trl_worker  # noqa: E402

from opo_theory.integrations.trl import group_objective, micro_config  # noqa: E402
from opo_theory.lm.experiments.compare import read_metrics, run_summary  # noqa: E402

SKIP_KEYS = ("step_time", "epoch", "train_runtime", "train_samples_per_second", "train_steps_per_second")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from opo_theory.lm.models.tiny_hf import build_tiny_model
    warnings.filterwarnings("ignore", category=FutureWarning)
    return build_tiny_model(tmp_path_factory.mktemp("trl") / "tiny", "llama", layers=1, width=32, heads=2)


def assert_same_runs(a: dict, b: dict, rtol=1e-6, atol=1e-8) -> None:
    """Same loss, gradient norm and every logged metric at every step, and the same final parameters
    (float64 weights: float32 rounding of differently split sums showed at ~1e-4 after two updates; HF keeps
    the logged loss in a float32 accumulator and TRL the rewards in float32, hence 1e-6 and 1e-8)."""
    assert len(a["rows"]) == len(b["rows"]) > 0
    for ra, rb in zip(a["rows"], b["rows"], strict=True):
        keys = sorted(k for k in set(ra) | set(rb) if k not in SKIP_KEYS)
        assert set(ra) - set(SKIP_KEYS) == set(rb) - set(SKIP_KEYS), keys
        for k in keys:
            x, y = ra[k], rb[k]
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                assert (x is None or math.isnan(x)) and (y is None or math.isnan(y)), (k, x, y)
            else:
                assert x == pytest.approx(y, rel=rtol, abs=atol), (ra["step"], k, x, y)
    pa, pb = torch.tensor(a["params"], dtype=torch.float64), torch.tensor(b["params"], dtype=torch.float64)
    assert torch.allclose(pa, pb, rtol=1e-7, atol=1e-8), (pa - pb).abs().max()


def test_conformance_with_trl_losses(model_dir, tmp_path):
    """On one generation batch, inside the subclass, registry grpo/dr-grpo/dapo/gspo configured like TRL give
    TRL's loss_type grpo/dr_grpo/dapo and importance_sampling_level='sequence' loss and gradient."""
    from trl import GRPOTrainer

    cases = [  # registry objective + config, TRL settings it must reproduce
        ("grpo", {"adv_eps": 1e-4}, {"loss_type": "grpo"}),
        ("dr-grpo", {}, {"loss_type": "dr_grpo", "scale_rewards": "none"}),
        ("dapo", {"adv_eps": 1e-4}, {"loss_type": "dapo", "epsilon_high": 0.28}),
        ("gspo", {"adv_eps": 1e-4}, {"loss_type": "grpo", "importance_sampling_level": "sequence",
                                     "epsilon_low": 3e-4, "epsilon_high": 4e-4}),
        ("gspo", {"adv_eps": 1e-4, "aggregation": "token-mean"},      # TRL's default loss_type with GSPO
         {"loss_type": "dapo", "importance_sampling_level": "sequence", "epsilon_low": 3e-4, "epsilon_high": 4e-4}),
        ("grpo", {"adv_eps": 1e-4, "eps_low": 0.1, "eps_high": 0.3},
         {"loss_type": "grpo", "epsilon_low": 0.1, "epsilon_high": 0.3}),
    ]
    tr = trl_worker.make_trainer(model_dir, tmp_path, 16, 1, objective="grpo", iterations=1, diagnostics=False,
                                 confidence_metrics=False)
    model = tr.model.train()
    tr.current_gradient_accumulation_steps = 1
    rows = [{"prompt": p, "answer": a} for p, a in zip(tr.train_dataset["prompt"][:4], tr.train_dataset["answer"][:4],
                                                       strict=True) for _ in range(trl_worker.GROUP)]
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(0)
    for objective, registry_cfg, trl_settings in cases:
        tr.scale_rewards = trl_settings.get("scale_rewards", "group")     # TRL's advantages are made here
        inputs = tr._generate_and_score_completions(rows)
        with torch.no_grad():            # an anchor away from the policy, so that ratios differ from 1 and clip
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
            att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
            logp = tr._get_per_token_logps_and_entropies(model, ids, att, inputs["completion_ids"].size(1))[0]
        inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(logp.shape, generator=gen)
        tr.spec, cfg = group_objective(objective, registry_cfg)
        tr.obj_cfg = micro_config(tr.spec, cfg, tr.max_completion_length)
        ours = tr._compute_loss(model, inputs)
        g_ours = torch.autograd.grad(ours, params)
        for name, value in {"loss_type": "grpo", "importance_sampling_level": "token", "epsilon_low": 0.2,
                            "epsilon_high": 0.2, **trl_settings}.items():
            setattr(tr, name, value)
        theirs = GRPOTrainer._compute_loss(tr, model, inputs)
        g_theirs = torch.autograd.grad(theirs, params)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-5, abs=1e-7), objective
        for a, b in zip(g_ours, g_theirs, strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), (objective, (a - b).abs().max())
        assert any(g.abs().sum() > 0 for g in g_ours), objective          # a non-trivial comparison
        tr._window = type(tr._window)()


def test_one_process_metrics_jsonl(model_dir, tmp_path):
    """A few OPO steps in one process: the toolkit's metrics.jsonl/config.json with the diagnostics, and
    with one update per generation the first update of each generation has Delta = 0 and an inert penalty."""
    run_dir = tmp_path / "run"
    trl_worker.run(model_dir, tmp_path, 16, 1, metrics_dir=run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert [r["generation"] for r in rows] == [0, 0, 1, 1]     # the generation round, used for 2 updates
    for text in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    for key in ("reward/mean", "accuracy", "grad/norm", "grad/norm_drive", "grad/norm_reg", "grad/cos_drive_reg",
                "pre/delta/m2", "pre/delta/m3", "pre/delta/abs_max", "pre/approx/loss_gap", "approx/grad_cos",
                "entropy/mean",
                "loss/drive", "loss/reg", "drive/abs_mean", "conf/lt0.5/share", "conf/total/grad_abs"):
        assert all(key in r for r in rows), key
    for r in rows:
        assert r["grad/norm"] == pytest.approx(r["grad_norm"], rel=1e-5)      # ours and HF's pre-clip norm
        assert r["loss/total"] == pytest.approx(r["loss"], rel=1e-5, abs=1e-7)
    fresh, reused = rows[0::2], rows[1::2]           # num_iterations = 2: each generation is used twice
    assert all(r["pre/delta/m2"] == 0 and r["grad/norm_reg"] == 0 for r in fresh)
    assert all(r["pre/delta/m2"] > 0 and r["grad/norm_reg"] > 0 for r in reused)
    assert not any(k.startswith(("delta/", "ratio/", "kl/", "chi2/")) for r in rows for k in r)  # the trainer's
    assert run_summary(rows)["final_reward"] == pytest.approx(sum(r["reward/mean"] for r in rows) / 4)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["engine"] == "trl" and config["trl"]["num_iterations"] == 2


def test_grad_accumulation_2_equals_1(model_dir, tmp_path):
    """GA 2 with half the per-device batch = GA 1: loss, gradient norm, every metric, final parameters."""
    one = trl_worker.run(model_dir, tmp_path / "a", 16, 1)
    two = trl_worker.run(model_dir, tmp_path / "b", 8, 2)
    assert_same_runs(one, two)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(model_dir, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, 8 rows each) = one process with the same 16-row global batch."""
    out = tmp_path / "ddp" / "result.json"
    out.parent.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(Path(__file__).parent / "trl_worker.py"), str(model_dir),
           str(out), "8", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    one = trl_worker.run(model_dir, tmp_path / "one", 16, 1)
    assert_same_runs(one, two)


@pytest.mark.parametrize("kw, message", [
    ({"objective": "nope"}, "unknown objective 'nope'"),
    ({"objective_config": {"not_a_key": 1}}, "unknown config key(s) ['not_a_key']"),
    ({"objective": "ppo-kl"}, "needs a reference policy"),
    ({"objective": "dpo"}, "is pairwise"),
    ({"per_device": 2, "grad_accum": 2}, "must be a multiple of num_generations"),
    ({"args": {"steps_per_generation": 3}, "grad_accum": 2}, "must be a multiple of gradient_accumulation_steps"),
    ({"args": {"loss_type": "grpo"}}, "GRPOConfig.loss_type='grpo' has no effect"),
    ({"beta": 0.1}, "loads a reference model that objective opo does not use"),
    ({"objective_config": {"center": "batch"}, "grad_accum": 2, "per_device": 8}, "center='batch'"),
])
def test_bad_input_refused_before_training(model_dir, tmp_path, kw, message):
    """Refused with one line in the constructor, before the model is loaded or anything is trained."""
    per_device, grad_accum = kw.pop("per_device", 16), kw.pop("grad_accum", 1)
    with pytest.raises(ValueError) as err:        # the model path does not exist: nothing is loaded first
        trl_worker.make_trainer(model_dir, tmp_path, per_device, grad_accum, model_path=tmp_path / "no-model", **kw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_engine_trl(model_dir, tmp_path, capsys):
    """`opo-theory train --engine trl` trains inside TRL; a key that has no TRL meaning is refused."""
    from opo_theory.cli import main

    out = tmp_path / "cli"
    code = main(["train", "--engine", "trl", "--model", f"hf:{model_dir}", "--objective", "opo", "--out", str(out),
                 "--quiet", "--set", "steps=1", "--set", "prompts_per_step=2", "--set", "group_size=4",
                 "--set", "max_new=4", "--set", "train_level=2", "--set", "pool_size=20", "minibatches=1"])
    assert code == 0
    rows = read_metrics(out / "metrics.jsonl")
    assert len(rows) == 2 and "grad/norm_drive" in rows[0]        # ppo_epochs = 2 updates of one generation
    assert main(["train", "--engine", "trl", "--model", f"hf:{model_dir}", "--objective", "opo", "--out",
                 str(tmp_path / "x"), "--set", "n_layer=2"]) == 2
    assert "does not apply to --engine trl" in capsys.readouterr().err


def test_dpo_subclass_matches_trl_sigmoid_and_ipo(model_dir, tmp_path):
    """RegistryDPOTrainer's dpo and ipo give TRL's loss_type 'sigmoid' and 'ipo' loss and gradient on one batch."""
    import datasets
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from opo_theory.integrations.trl import RegistryDPOTrainer
    from opo_theory.objectives import get

    data = datasets.Dataset.from_dict({"prompt": ["1+2=", "3+4=", "5+1=", "2+2="], "chosen": ["3", "7", "6", "4"],
                                       "rejected": ["12", "8", "51", "22"]})
    args = DPOConfig(output_dir=str(tmp_path), use_cpu=True, per_device_train_batch_size=4, report_to=[],
                     save_strategy="no", disable_tqdm=True, max_steps=1, beta=0.1)
    tr = RegistryDPOTrainer(model=str(model_dir), args=args, train_dataset=data, objective="dpo",
                            processing_class=AutoTokenizer.from_pretrained(model_dir, local_files_only=True))
    model = tr.model.train()
    with torch.no_grad():                    # move the policy off the reference so that h != 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    inputs = tr._prepare_inputs(next(iter(tr.get_train_dataloader())))
    params = [p for p in model.parameters() if p.requires_grad]
    for objective, trl_loss in (("dpo", "sigmoid"), ("ipo", "ipo")):
        tr.spec, tr.obj_cfg = get(objective), get(objective).make_config(beta=0.1)
        ours = tr._compute_loss(model, inputs, False)
        g_ours = torch.autograd.grad(ours, params)
        tr.loss_types, tr.loss_weights = [trl_loss], [1.0]
        theirs = DPOTrainer._compute_loss(tr, model, inputs, False)
        g_theirs = torch.autograd.grad(theirs, params)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-5), objective
        scale = max(float(b.abs().max()) for b in g_theirs)      # float32 rounding relative to the largest entry
        for a, b in zip(g_ours, g_theirs, strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale), (objective, (a - b).abs().max())
    with pytest.raises(ValueError, match="is not pairwise"):
        RegistryDPOTrainer(model=str(model_dir), args=args, train_dataset=data, objective="opo")
