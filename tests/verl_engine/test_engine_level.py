"""The plugin inside verl's own FSDP2 training engine (CPU, gloo): its gradients against the registry's.

The test plays verl's driver and workers the way ``verl.trainer.ppo.ray_trainer`` chains them, with
transformers ``generate`` standing in for the rollout server (verl 0.9.1's rollouts are vLLM, SGLang
or TRT-LLM only):
  driver (this process)  rollout by ``generate`` from a tiny random llama (``opo_theory.lm.models.tiny_hf``)
                         on the exporter's prompts (``opo_theory.integrations.verl_data.rows``),
                         seeded rewards (a random model answers nothing, so the task's reward would
                         tie everywhere and the drive would be 0), advantages by verl's
                         ``compute_advantage`` with ``adv_estimator=opo_theory`` (the plugin's
                         estimator);
  workers (torchrun)     verl's ``TrainingWorker`` (the actor of ``ActorRolloutRefWorker.init_model``:
                         ``strategy=fsdp2``, fp32) computes the old log-probs (``infer_batch``) and
                         runs the update (``train_mini_batch``) with verl's ``ppo_loss`` wrapper and
                         the plugin's loss. The learning rate is 0, so the weights stay the rollout's;
                         each update runs with the engine's own old log-probs (a first update:
                         Delta = 0, where the penalty (mu/2) E[v²] has no gradient) and with them
                         shifted by seeded noise (a moved policy, as on a later mini-batch: Delta != 0,
                         the penalty counts). The whole gradient is read inside the engine's optimizer
                         step, before its clip (the engine zeroes it when it leaves train mode).
What runs verl's engine on a CPU: a CPU platform registered through verl's ``PlatformRegistry``
(``VERL_PLATFORM=cpu``), a gloo process group, ``VERL_ENGINE_DEVICE=cuda`` (verl registers its FSDP
engine for cuda/npu only; nothing in it is CUDA-specific once the platform answers "cpu"),
``attn_implementation=sdpa`` and ``use_remove_padding=false`` (the packed path needs flash-attention).

Claims tested: the gradient is the same for micro-batch sizes 16, 4 and 2 on one process and on two
processes (each holding 8 of the 16 rows), and equals the gradient of the registry's own objective
(``opo_theory.objectives``) on the same weights, batch and old log-probs. Tolerance: everything is float32 and the
paths differ only in summation order (micro-batches summed, two ranks' shards averaged by FSDP's
reduce-scatter, padded vs per-rank attention batches), so the differences are float32 rounding:
measured at most 4.8e-7 of the gradient's largest entry (2026-12-06); asserted at rtol 1e-5 and
atol 1e-5 of that entry. Time: ~25-40 s per torchrun (imports, FSDP2 set-up, one log-prob pass and 12
updates) on a loaded 2-core machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from opo_theory.integrations import verl as plugin
from opo_theory.integrations.verl_data import rows
from opo_theory.objectives import PolicyBatch, get

LEVEL, PROMPTS, N, NEW_TOKENS, SEED = 1, 4, 4, 4, 3     # 16 responses of up to 4 tokens
MICRO_ONE, MICRO_TWO = (16, 4, 2), (8, 4, 2)           # micro-batch sizes per process (1 / 2 processes)
CASES = {"opo": {"loss_mode": "opo_theory.opo", "alpha": 0.4, "mu": 1.0},
         "gopo-bounded": {"loss_mode": "opo_theory.gopo-bounded", "mu": 0.5}}
ANCHORS = ("first", "moved")   # old log-probs = the engine's own (a first update), or shifted (the policy moved)
MOVE = 0.3                      # std of the seeded shift of the moved anchor's old log-probs, per response token
RTOL = ATOL = 1e-5          # relative to the largest gradient entry (see the module docstring)
TIMEOUT = 600


# ---------------------------------------------------------------- workers (run by torchrun) --------

def register_cpu_platform() -> None:
    """A verl platform whose device is the CPU and whose collective backend is gloo (``VERL_PLATFORM=cpu``)."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    from verl.plugin.platform import PlatformBase, PlatformRegistry

    no_memory = lambda *_a, **_k: 0         # noqa: E731 - the CPU keeps no device-memory statistics
    device = SimpleNamespace(is_available=lambda: True, empty_cache=lambda: None, set_device=lambda _i: None,
                             synchronize=lambda *_a: None, max_memory_allocated=no_memory,
                             max_memory_reserved=no_memory, memory_allocated=no_memory,
                             memory_reserved=no_memory, mem_get_info=lambda *_a: (0, 0),
                             manual_seed=torch.manual_seed, manual_seed_all=torch.manual_seed,
                             get_device_name=lambda *_a: "CPU")     # verl's FLOP table: unknown, mfu 0

    @PlatformRegistry.register(platform="cpu")
    class PlatformCPU(PlatformBase):
        device_name = "cpu"
        vendor_name = "cpu"
        device_module = device
        is_available = staticmethod(lambda: True)
        current_device = staticmethod(lambda: "cpu")     # verl moves tensors with .to(current_device())
        device_count = staticmethod(lambda: 1)
        set_device = staticmethod(lambda _i: None)
        synchronize = staticmethod(lambda _i=None: None)
        manual_seed = manual_seed_all = staticmethod(torch.manual_seed)
        set_allocator_settings = staticmethod(lambda _s: None)
        empty_cache = staticmethod(lambda: None)
        get_device_capability = staticmethod(lambda _i=0: (None, None))
        communication_backend_name = staticmethod(lambda: "gloo")
        visible_devices_envvar = staticmethod(lambda: "CPU_VISIBLE_DEVICES")
        ray_resource_name = staticmethod(lambda: "CPU")
        ray_noset_envvars = staticmethod(lambda: [])
        is_ipc_supported = staticmethod(lambda: False)
        cudart = staticmethod(lambda: None)
        profiler_start = profiler_stop = staticmethod(lambda: None)

        @contextmanager
        def nvtx_range(self, msg):
            yield


def actor_config(model_dir: str, case: dict, global_batch: int):
    """verl's actor and model configs from its own ``ppo_trainer`` defaults plus the CPU overrides."""
    from hydra import compose, initialize_config_module
    from verl.utils.config import omega_conf_to_dataclass

    pl = "actor_rollout_ref.actor.policy_loss"
    overrides = [f"actor_rollout_ref.model.path={model_dir}", "actor_rollout_ref.model.use_remove_padding=false",
                 "actor_rollout_ref.model.enable_gradient_checkpointing=false",
                 "+actor_rollout_ref.model.override_config.attn_implementation=sdpa",
                 "actor_rollout_ref.actor.strategy=fsdp2", "actor_rollout_ref.actor.use_torch_compile=false",
                 "actor_rollout_ref.actor.fsdp_config.use_torch_compile=false",
                 "+actor_rollout_ref.actor.fsdp_config.mixed_precision="
                 "{param_dtype:fp32,reduce_dtype:fp32,buffer_dtype:fp32}",
                 "actor_rollout_ref.actor.optim.lr=0.0",
                 f"actor_rollout_ref.actor.ppo_mini_batch_size={global_batch // N}",
                 "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
                 f"actor_rollout_ref.rollout.n={N}",
                 f"{pl}._target_=opo_theory.integrations.verl.OPOLossConfig"]
    overrides += [f"{'' if k == 'loss_mode' else '+'}{pl}.{k}={v}" for k, v in case.items()]
    with initialize_config_module("verl.trainer.config", version_base=None):
        cfg = compose("ppo_trainer", overrides=overrides)
    model = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    actor.model_config = model
    return actor, model


def full_gradient(module) -> dict[str, torch.Tensor]:
    """{name: whole gradient} of an FSDP2 module (shards gathered; every rank must call it)."""
    from torch.distributed.tensor import DTensor

    out = {}
    for name, p in module.named_parameters():
        g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
        out[name] = g.detach().clone()
    return out


def capture_before(optimizer_step, module, into: dict):
    """The engine's optimizer step, first copying the whole gradient into ``into`` (the engine zeroes
    the gradients when it leaves train mode, so they are read here: after backward, before the clip)."""
    def step():
        into.update(full_gradient(module))
        return optimizer_step()
    return step


def run_worker(batch_path: str, model_dir: str, out_dir: str) -> None:
    """One torchrun rank: build verl's actor, old log-probs, then one update per (case, micro size)."""
    from functools import partial
    from itertools import product

    import torch.distributed as dist

    register_cpu_platform()
    dist.init_process_group("gloo")
    from verl import DataProto
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine_workers import TrainingWorker, TrainingWorkerConfig
    from verl.workers.utils.losses import ppo_loss
    from verl.workers.utils.padding import left_right_2_no_padding, no_padding_2_padding

    rank, world = dist.get_rank(), dist.get_world_size()
    saved = torch.load(batch_path, weights_only=False)
    n_rows = len(saved["tensors"]["input_ids"])
    shard = slice(rank * n_rows // world, (rank + 1) * n_rows // world)      # verl's dispatch: equal chunks

    def shard_td(extra=None):
        tensors = {k: v[shard] for k, v in {**saved["tensors"], **(extra or {})}.items()}
        return left_right_2_no_padding(DataProto.from_dict(tensors, meta_info={"temperature": 1.0}).to_tensordict())

    worker = None
    for case_name, case in CASES.items():
        actor, model = actor_config(model_dir, case, n_rows)
        if worker is None:
            worker = TrainingWorker(TrainingWorkerConfig(
                model_type="language_model", model_config=model, engine_config=actor.engine,
                optimizer_config=actor.optim, checkpoint_config=actor.checkpoint))
            worker.reset()
            worker.engine.optimizer_step = capture_before(worker.engine.optimizer_step, worker.engine.module,
                                                          captured := {})
            # old log-probs: ActorRolloutRefWorker.compute_log_prob, gathered as the driver collects them
            td = shard_td()
            tu.assign_non_tensor(td, calculate_entropy=False, compute_loss=False, micro_batch_size_per_gpu=2,
                                 use_dynamic_bsz=False)
            old = no_padding_2_padding(tu.get(worker.infer_batch(td), "log_probs"), td).float()
            parts = [torch.zeros_like(old) for _ in range(world)]
            dist.all_gather(parts, old.contiguous())
            old_log_probs = torch.cat(parts)
        worker.set_loss_fn(partial(ppo_loss, config=actor))
        adv = saved["advantages"][case_name]
        for anchor, micro in product(ANCHORS, MICRO_ONE if world == 1 else MICRO_TWO):
            old = old_log_probs + (saved["shift"] if anchor == "moved" else 0)
            td = shard_td({"old_log_probs": old, "advantages": adv})
            # the call of RayPPOTrainer._update_actor, then ActorRolloutRefWorker.update_actor
            tu.assign_non_tensor(td, calculate_entropy=False, global_batch_size=n_rows, mini_batch_size=n_rows,
                                 epochs=1, seed=42, dataloader_kwargs={"shuffle": False}, compute_loss=True,
                                 micro_batch_size_per_gpu=micro, use_dynamic_bsz=False)
            captured.clear()
            worker.train_mini_batch(td)
            if rank == 0:
                torch.save(dict(captured), Path(out_dir) / f"grad-{case_name}-{anchor}-{micro}.pt")
    if rank == 0:
        torch.save(old_log_probs, Path(out_dir) / "old_log_probs.pt")
    dist.barrier()
    dist.destroy_process_group()


# ---------------------------------------------------------------- driver (pytest) ------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rollout(model_dir: Path):
    """Prompts of the task, N sampled responses each by ``generate``, padded as verl's rollout pads them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    data = rows(LEVEL, "train", PROMPTS, SEED, prompt_format="raw")       # the exporter's rows
    enc = [tok(r["prompt"][0]["content"], add_special_tokens=False)["input_ids"] for r in data]
    width = max(map(len, enc))
    prompts = torch.tensor([[tok.pad_token_id] * (width - len(e)) + e for e in enc]).repeat_interleave(N, 0)
    prompt_mask = (torch.arange(width)[None] >= width - torch.tensor([len(e) for e in enc])[:, None])
    prompt_mask = prompt_mask.long().repeat_interleave(N, 0)
    torch.manual_seed(SEED)
    with torch.no_grad():
        seq = model.generate(input_ids=prompts, attention_mask=prompt_mask, do_sample=True, top_k=0,
                             max_new_tokens=NEW_TOKENS, min_new_tokens=1, pad_token_id=tok.pad_token_id,
                             eos_token_id=tok.eos_token_id)
    responses = seq[:, width:]
    responses = torch.nn.functional.pad(responses, (0, NEW_TOKENS - responses.shape[1]), value=tok.pad_token_id)
    # the response ends with its first eos (kept); what follows is padding
    after_eos = (responses == tok.eos_token_id).long().cumsum(-1) - (responses == tok.eos_token_id).long()
    response_mask = (after_eos == 0).long()
    responses = torch.where(response_mask.bool(), responses, tok.pad_token_id)
    attention_mask = torch.cat([prompt_mask, response_mask], -1)
    texts = tok.batch_decode(responses * response_mask, skip_special_tokens=True)
    # a random model answers no problem (compute_score gives every response the same reward, so the drive
    # would be 0): the rewards are seeded draws from {0, 0.5, 1} instead; the reward function has its own tests
    scores = torch.randint(0, 3, (len(responses),), generator=torch.Generator().manual_seed(SEED)) / 2
    return dict(prompts=prompts, responses=responses, input_ids=torch.cat([prompts, responses], -1),
                attention_mask=attention_mask, position_ids=(attention_mask.cumsum(-1) - 1).clamp_min(0),
                response_mask=response_mask), scores, texts


def advantages(tensors, scores, case):
    """verl's compute_advantage with the plugin's estimator (token-level reward on the last token)."""
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    mask = tensors["response_mask"]
    token_rewards = torch.zeros(mask.shape)
    token_rewards[torch.arange(len(mask)), mask.sum(-1) - 1] = scores
    uid = np.array([f"uid-{i // N}" for i in range(len(mask))], dtype=object)
    data = DataProto.from_dict({"token_level_rewards": token_rewards, "response_mask": mask},
                               non_tensors={"uid": uid})
    algo = OmegaConf.create({"adv_estimator": plugin.ESTIMATOR, plugin.CONFIG_KEY: {
        "_target_": "opo_theory.integrations.verl.OPOLossConfig", **case}})
    return compute_advantage(data, adv_estimator=plugin.ESTIMATOR, num_repeat=N, config=algo).batch["advantages"]


def registry_gradient(model_dir: Path, tensors, scores, case, shift):
    """d L / d theta of the registry's objective on the whole batch, with a plain transformers model
    (old log-probs: the model's own plus ``shift``)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=torch.float32)
    logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"],
                   position_ids=tensors["position_ids"]).logits.float()
    t = tensors["responses"].shape[1]
    logp = torch.log_softmax(logits[:, -t - 1:-1], -1).gather(-1, tensors["responses"][..., None])[..., 0]
    name, cfg = plugin.objective_config(case)
    batch = PolicyBatch(logp=logp, logp_old=logp.detach() + shift, mask=tensors["response_mask"].float(),
                        group=torch.arange(len(logp)) // N, rewards=scores)
    loss, _ = get(name)(batch, cfg)
    loss.backward()
    return {k: p.grad.detach().clone() for k, p in model.named_parameters()}, logp.detach()


def torchrun(nproc: int, batch_path: Path, model_dir: Path, out: Path) -> float:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VERL_PLATFORM": "cpu", "VERL_ENGINE_DEVICE": "cuda",
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "VERL_LOGGING_LEVEL": "WARN"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), __file__,
           str(batch_path), str(model_dir), str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def engine_runs(tmp_path_factory):
    from opo_theory.lm.models.tiny_hf import build_tiny_model

    root = tmp_path_factory.mktemp("verl-engine")
    model_dir = build_tiny_model(root / "model", layers=2, width=64, seed=SEED)
    tensors, scores, texts = rollout(model_dir)
    adv = {name: advantages(tensors, scores, case) for name, case in CASES.items()}
    batch_path = root / "batch.pt"
    shift = MOVE * torch.randn(tensors["response_mask"].shape, generator=torch.Generator().manual_seed(SEED))
    shift = shift * tensors["response_mask"]
    torch.save({"tensors": tensors, "advantages": adv, "shift": shift}, batch_path)
    seconds = {n: torchrun(n, batch_path, model_dir, root / f"procs-{n}") for n in (1, 2)}
    print(f"\nverl engine runs: {seconds} s; responses {texts}; rewards {scores.tolist()}")
    return dict(root=root, model_dir=model_dir, tensors=tensors, scores=scores, adv=adv, shift=shift)


def scaled_close(actual, expected, what):
    scale = max(float(g.abs().max()) for g in expected.values())
    assert scale > 0, f"{what}: the reference gradient is zero (the rewards give no drive)"
    assert actual.keys() == expected.keys(), what
    worst = max(float((actual[k] - expected[k]).abs().max()) for k in expected) / scale
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k], rtol=RTOL, atol=ATOL * scale, msg=f"{what}: {k}")
    return worst


def test_rewards_give_every_case_a_drive(engine_runs):
    """Not vacuous: rewards differ within some group, so each objective's drive is nonzero there."""
    scores = engine_runs["scores"].view(PROMPTS, N)
    assert ((scores.max(1).values - scores.min(1).values) > 0).any(), scores
    for name, adv in engine_runs["adv"].items():
        assert adv.abs().max() > 0, name


@pytest.mark.parametrize("anchor", ANCHORS)
@pytest.mark.parametrize("case_name", list(CASES))
def test_engine_gradient_equals_registry_at_every_split(engine_runs, case_name, anchor):
    """verl FSDP2 engine + plugin: one gradient for micro 16/4/2 x 1 process and micro 8/4/2 x 2 processes,
    equal to the registry objective's gradient on the same weights, batch and old log-probs."""
    shift = engine_runs["shift"] if anchor == "moved" else torch.zeros_like(engine_runs["shift"])
    expected, logp = registry_gradient(engine_runs["model_dir"], engine_runs["tensors"], engine_runs["scores"],
                                       CASES[case_name], shift)
    if anchor == "moved":       # not vacuous: moving the anchor changes the gradient (the penalty counts)
        first, _ = registry_gradient(engine_runs["model_dir"], engine_runs["tensors"], engine_runs["scores"],
                                     CASES[case_name], torch.zeros_like(shift))
        change = max(float((expected[k] - first[k]).abs().max()) for k in first)
        assert change > 0.1 * max(float(g.abs().max()) for g in first.values()), change
    root = engine_runs["root"]
    mask = engine_runs["tensors"]["response_mask"].bool()
    for procs in (1, 2):
        old = torch.load(root / f"procs-{procs}" / "old_log_probs.pt")
        torch.testing.assert_close(old[mask], logp[mask], rtol=1e-5, atol=1e-5)
        for micro in (MICRO_ONE if procs == 1 else MICRO_TWO):
            got = torch.load(root / f"procs-{procs}" / f"grad-{case_name}-{anchor}-{micro}.pt")
            worst = scaled_close(got, expected, f"{case_name}, {anchor}, {procs} process(es), micro {micro}")
            print(f"{case_name} {anchor} procs={procs} micro={micro}: max |engine - registry| / max|g| = {worst:.2e}")


if __name__ == "__main__":          # torchrun entry: BATCH MODEL_DIR OUT_DIR
    run_worker(*sys.argv[1:4])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)                     # right after destroy_process_group: gloo's teardown can abort otherwise
