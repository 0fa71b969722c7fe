"""A RegistryGRPOTrainer run with deterministic rollouts, for the TRL integration tests (in-process or torchrun).

Completions are drawn from a generator seeded by (prompt, index in the group, optimizer step), so any split
of the same global batch over processes and accumulation steps sees the same rollouts and rewards.
    python -m torch.distributed.run --nproc_per_node 2 --master_addr 127.0.0.1 --master_port P \
        tests/trl_worker.py MODEL_DIR OUT_JSON PER_DEVICE GRAD_ACCUM
"""

from __future__ import annotations

import json
import os
import sys
import warnings
import zlib

import torch

GROUP, PROMPTS, MAX_NEW = 4, 4, 6          # global batch: 4 prompts x 4 completions per optimizer step


def rollout(prompts, trainer):
    """Deterministic completions: token ids from crc32(prompt, row in group, step); ends with <eos> when short."""
    tok = trainer.processing_class
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    completion_ids = []
    for i, p in enumerate(prompts):
        gen = torch.Generator().manual_seed(zlib.crc32(f"{p}|{i % GROUP}|{trainer.state.global_step}".encode()))
        n = int(torch.randint(1, MAX_NEW + 1, (1,), generator=gen))
        ids = torch.randint(2, len(tok), (n,), generator=gen).tolist()
        if n < MAX_NEW:
            ids[-1] = tok.eos_token_id
        completion_ids.append(ids)
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def spread_reward(completions, log_extra=None, **_):
    """A reward with spread inside groups (a random tiny model never solves the task): crc32 of the text."""
    r = [(zlib.crc32(c.encode()) % 5) / 4 for c in completions]
    if log_extra is not None:
        log_extra("correct", [x == 1.0 for x in r])
    return r


def make_trainer(model_dir, out, per_device, grad_accum, objective="opo", objective_config=None, steps=4,
                 iterations=2, metrics_dir=None, model_path=None, **kw):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from opo_theory.integrations.trl import RegistryGRPOTrainer
    from opo_theory.integrations.trl_run import task_dataset

    args = GRPOConfig(
        output_dir=str(out), use_cpu=True, seed=0, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=grad_accum, num_generations=GROUP, num_iterations=iterations,
        max_completion_length=MAX_NEW, beta=kw.pop("beta", 0.0), learning_rate=0.05, optim="sgd",
        lr_scheduler_type="constant", max_steps=steps, logging_steps=1, report_to=[], save_strategy="no",
        disable_dropout=True, disable_tqdm=True, dataloader_num_workers=0, **kw.pop("args", {}))
    # float64 weights: equalities across batch splits then hold to ~1e-12, not to float32's summation noise
    model = str(model_path) if model_path else AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    return RegistryGRPOTrainer(
        model=model, reward_funcs=spread_reward, args=args, train_dataset=task_dataset(1, 40, 0),
        processing_class=AutoTokenizer.from_pretrained(model_dir, local_files_only=True), rollout_func=rollout,
        objective=objective, objective_config=objective_config, metrics_dir=metrics_dir, **kw)


def run(model_dir, out, per_device, grad_accum, **kw) -> dict:
    """Train; the per-step log rows and the final parameters."""
    trainer = make_trainer(model_dir, out, per_device, grad_accum, **kw)
    trainer.train()
    rows = [r for r in trainer.state.log_history if "loss" in r]
    params = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).tolist()
    return {"rows": rows, "params": params}


def main() -> int:
    warnings.filterwarnings("ignore")
    model_dir, out_json, per_device, grad_accum = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    result = run(model_dir, os.path.dirname(out_json), per_device, grad_accum)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(out_json, "w") as fh:
            json.dump(result, fh)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    os._exit(0)            # right after the teardown: a gloo abort at interpreter exit was seen otherwise


if __name__ == "__main__":
    sys.exit(main())
