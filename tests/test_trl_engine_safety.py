"""The TRL engine changes nothing silently: a TRL outside the supported release, vLLM's importance-sampling
correction, the gradient split under sharded engines, report_to, LoRA through peft_config, and the documented
multi-process command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
import trl_worker  # noqa: E402

from opo_theory.integrations.trl import (  # noqa: E402
    TRLVersionError,
    check_trl_version,
    sharded_engine,
    split_allowed,
)
from opo_theory.integrations.trl_run import report_targets  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from opo_theory.lm.models.tiny_hf import build_tiny_model
    warnings.filterwarnings("ignore", category=FutureWarning)
    return build_tiny_model(tmp_path_factory.mktemp("trl-safety") / "tiny", "llama", layers=1, width=32, heads=2)


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("version", ["1.15.2", "1.17.0", "2.0.0", "1.1.6"])
def test_other_trl_release_refused_in_one_line(version):
    with pytest.raises(TRLVersionError) as err:
        check_trl_version(version)
    assert f"found trl {version}" in one_line(err) and "trl==1.16.0" in str(err.value)
    assert isinstance(err.value, ValueError)            # the CLI's one-line handler catches it


@pytest.mark.parametrize("version", ["1.16.0", "1.16.3"])
def test_supported_release_accepted(version):
    check_trl_version(version)


def test_vllm_importance_sampling_correction_refused(model_dir, tmp_path):
    """TRL multiplies its per-token loss by the vLLM IS ratio; the registry loss has no per-token loss to weight."""
    with pytest.raises(ValueError) as err:
        trl_worker.make_trainer(model_dir, tmp_path, 16, 1, model_path=tmp_path / "no-model",
                                args={"use_vllm": True})
    assert "vllm_importance_sampling_correction=False" in one_line(err)


def grpo_args(tmp_path, **kw):
    from trl import GRPOConfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **kw)


def test_gradient_split_under_sharded_engines(tmp_path):
    """Off with one warning by default under FSDP or DeepSpeed, refused when asked for, unchanged under DDP."""
    plain, fsdp = grpo_args(tmp_path), grpo_args(tmp_path, fsdp=True)
    zero = grpo_args(tmp_path)
    zero.deepspeed = {"zero_optimization": {"stage": 2}}     # a DeepSpeed config (deepspeed itself not needed)
    assert [sharded_engine(a) for a in (plain, fsdp, zero)] == [None, "FSDP", "DeepSpeed"]
    assert split_allowed(None, None) and split_allowed(None, True) and not split_allowed(None, False)
    for engine in ("FSDP", "DeepSpeed"):
        with pytest.warns(UserWarning, match=f"{engine}: the drive/penalty gradient split is off"):
            assert split_allowed(engine, None) is False
        assert split_allowed(engine, False) is False
        with pytest.raises(ValueError) as err:
            split_allowed(engine, True)
        assert engine in one_line(err)


def test_explicit_split_with_fsdp_refused_before_loading(model_dir, tmp_path):
    with pytest.raises(ValueError) as err:
        trl_worker.make_trainer(model_dir, tmp_path, 16, 1, model_path=tmp_path / "no-model",
                                args={"fsdp": True}, diagnostics=True)
    assert "FSDP shards them" in one_line(err)


def test_report_to(tmp_path):
    from transformers.integrations import get_available_reporting_integrations

    assert report_targets("none") == []
    missing = next(n for n in ("tensorboard", "wandb", "mlflow") if n not in get_available_reporting_integrations())
    with pytest.raises(ValueError) as err:
        report_targets(missing)
    assert f"{missing} is not installed" in one_line(err)


def test_report_to_refused_by_the_toolkit_engine(tmp_path, capsys):
    from opo_theory.cli import main
    assert main(["train", "--objective", "opo", "--out", str(tmp_path / "r"), "--set", "report_to=tensorboard"]) == 2
    assert "applies to --engine trl" in capsys.readouterr().err


def test_lora_through_peft_config(model_dir, tmp_path):
    """LoRA adapters train (the base weights do not move) and the drive/penalty split is taken on them."""
    peft = pytest.importorskip("peft", reason="peft is not installed: pip install -e '.[trl]'")
    from transformers import AutoModelForCausalLM

    base = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
            .state_dict().items()}
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                           task_type="CAUSAL_LM")
    trainer = trl_worker.make_trainer(model_dir, tmp_path, 16, 1, steps=2, metrics_dir=tmp_path / "m",
                                      peft_config=lora)
    trainer.train()
    trained = trainer.model
    adapters = {n: p for n, p in trained.named_parameters() if p.requires_grad}
    assert adapters and all("lora_" in n for n in adapters)
    merged_free = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
                   for k, v in trained.state_dict().items() if "lora_" not in k}
    assert all(torch.equal(merged_free[k], v) for k, v in base.items())
    assert any(p.abs().sum() > 0 for n, p in adapters.items() if "lora_B" in n)     # B starts at 0, then moves
    rows = [json.loads(x) for x in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["grad/norm_drive"] is not None and r["grad/norm_drive"] > 0 for r in rows)


def test_documented_two_process_command(model_dir, tmp_path):
    """README: `torchrun --nproc_per_node 2 -m opo_theory train --engine trl ...` runs two processes on a CPU
    machine (accelerate launch without --multi_gpu silently runs one)."""
    out = tmp_path / "trl2"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(trl_worker_port()), "-m", "opo_theory", "train", "--engine", "trl",
           "--model", f"hf:{model_dir}", "--objective", "opo", "--out", str(out), "--quiet",
           "--set", "steps=1", "prompts_per_step=2", "group_size=4", "max_new=4", "train_level=2", "pool_size=20",
           "minibatches=1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["trl"]["per_device_train_batch_size"] == 4        # 2 prompts x 4 over 2 processes
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2                                           # ppo_epochs = 2 optimizer steps


def trl_worker_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
