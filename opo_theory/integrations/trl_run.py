"""`opo-theory train --engine trl`: the toolkit's arithmetic task (or a user's ``dataset``, trained on its train
split) and `--set` keys mapped onto TRL's GRPOTrainer.

The keys that mean the same thing in both engines are taken (ENGINE_KEYS); the others are refused with one
line. TRL counts optimizer steps: one RL step of the toolkit (a generation round of prompts_per_step x
group_size rollouts, ppo_epochs passes of `minibatches` updates) is ppo_epochs x minibatches TRL steps, and
metrics.jsonl has one row per optimizer step. The model is trained as loaded (no SFT warm-up).
Several processes: ``torchrun --nproc_per_node N -m opo_theory train --engine trl ...`` (or ``accelerate
launch``); prompts_per_step must then be divisible by N x minibatches.
"""

from __future__ import annotations

import os
from pathlib import Path

from opo_theory.lm.tasks.arithmetic import Problem, problems, question, reward

# toolkit key -> GRPOConfig field it sets (None: used by this module itself)
ENGINE_KEYS = {"lr": "learning_rate", "steps": None, "prompts_per_step": None, "group_size": "num_generations",
               "max_new": "max_completion_length", "temperature": "temperature", "top_p": "top_p",
               "grad_clip": "max_grad_norm", "ppo_epochs": "num_iterations", "minibatches": "steps_per_generation",
               "weight_decay": "weight_decay", "train_level": None, "pool_size": None, "shaping": None,
               "sft_seed": None, "bf16": "bf16", "device": None, "grad_split": None, "approx_grad": None,
               "prompt_format": None, "verifier": None, "dataset": None, "val_size": None,
               "report_to": "report_to"}


def task_dataset(level: int, n: int, seed: int, prompt_format: str = "raw"):
    """The arithmetic task's training problems as a datasets.Dataset with columns prompt, answer: the raw text,
    or (chat) one user message asking the task's question, which TRL renders with the tokenizer's chat
    template and its generation prompt, as the toolkit's engine does (opo_theory.lm.models.hf.prompt_encoder)."""
    return problems_dataset(problems(level, "train", n, seed), prompt_format)


def problems_dataset(items: list[Problem], prompt_format: str = "raw", ask=question):
    """``items`` as a datasets.Dataset with columns prompt, answer: the raw text, or (chat) one user message
    saying ``ask(prompt)`` (the task's question; a user's own prompt as written)."""
    import datasets

    prompts = [p.prompt if prompt_format == "raw" else [{"role": "user", "content": ask(p.prompt)}] for p in items]
    return datasets.Dataset.from_dict({"prompt": prompts, "answer": [p.answer for p in items]})


def train_dataset(cfg):
    """The problems TRL trains on: the arithmetic level's train pool, or the train split of cfg.dataset (the same
    problems the toolkit's engine draws from, opo_theory.lm.tasks.dataset)."""
    from opo_theory.lm.tasks.dataset import NONE, chat_text, dataset_pools

    if cfg.dataset == NONE:
        return task_dataset(cfg.train_level, cfg.pool_size, cfg.sft_seed, cfg.prompt_format)
    return problems_dataset(dataset_pools(cfg)["train"], cfg.prompt_format, chat_text(cfg))


def completion_text(completion) -> str:
    """A TRL completion's text: the string itself, or the content of a conversational completion's last message."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def task_reward_fn(shaping: float = 0.0, verifier: str = "strict"):
    """A TRL reward function: the task's reward for each completion under ``verifier`` (``answer`` is a dataset
    column); per-row correctness goes to TRL's log_extra column ``correct`` (the trainer logs it as ``accuracy``)."""
    def task_reward(completions, answer, log_extra=None, **_) -> list[float]:
        scored = [reward(completion_text(c), a, shaping, verifier) for c, a in zip(completions, answer, strict=True)]
        if log_extra is not None:
            log_extra("correct", [ok for _, ok in scored])
        return [r for r, _ in scored]
    return task_reward


def refuse_other_keys(settings: list[str] | None) -> None:
    """A `--set` key that has no meaning in TRL is refused with one line naming those that do."""
    for pair in settings or []:
        key = pair.split("=", 1)[0]
        if not key.startswith("objective.") and key not in ENGINE_KEYS:
            raise ValueError(f"--set {key} does not apply to --engine trl; it takes objective.KEY and "
                             f"{', '.join(ENGINE_KEYS)}")


def report_targets(report_to: str) -> list[str]:
    """GRPOConfig.report_to from the ``report_to`` setting: [] for none, else its comma list; an integration whose
    package is missing is refused in one line (transformers would fail later, mid-construction)."""
    if report_to == "none":
        return []
    from transformers.integrations import get_available_reporting_integrations
    names = report_to.split(",")
    missing = sorted(set(names) - set(get_available_reporting_integrations()))
    if missing:
        raise ValueError(f"report_to={report_to}: {', '.join(missing)} is not installed here (available: "
                         f"{', '.join(get_available_reporting_integrations()) or 'none'})")
    return names


def grpo_config(cfg, out: Path, world_size: int):
    """GRPOConfig for a TrainConfig: one generation round per toolkit step, whole groups per micro-batch."""
    from trl import GRPOConfig

    from opo_theory.objectives import get

    rows = cfg.prompts_per_step * cfg.group_size
    if cfg.prompts_per_step % (world_size * cfg.minibatches):
        raise ValueError(f"prompts_per_step ({cfg.prompts_per_step}) must be divisible by processes x minibatches "
                         f"({world_size} x {cfg.minibatches}) so every micro-batch holds whole groups")
    spec = get(cfg.objective)
    beta = spec.make_config(**cfg.objective_config).beta if spec.needs_reference else 0.0
    return GRPOConfig(
        output_dir=str(out / "trl"), use_cpu=cfg.device == "cpu", bf16=cfg.bf16, seed=cfg.seed,
        per_device_train_batch_size=rows // (world_size * cfg.minibatches), gradient_accumulation_steps=1,
        steps_per_generation=cfg.minibatches, num_generations=cfg.group_size, num_iterations=cfg.ppo_epochs,
        max_completion_length=cfg.max_new, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0, beta=beta,
        learning_rate=cfg.lr, weight_decay=cfg.weight_decay, max_grad_norm=cfg.grad_clip,
        lr_scheduler_type="constant", max_steps=cfg.steps * cfg.ppo_epochs * cfg.minibatches, logging_steps=1,
        report_to=report_targets(cfg.report_to), save_strategy="no", dataloader_num_workers=0, disable_dropout=True, log_completions=False,
        disable_tqdm=True)


def progress_callback(cfg):
    """A TrainerCallback printing the toolkit's progress line (step, reward, accuracy, grad norm) to stderr."""
    import sys

    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero and logs and "loss" in logs:
                f = lambda k: logs.get(k) if isinstance(logs.get(k), (int, float)) else float("nan")
                print(f"[{cfg.objective} seed {cfg.seed} trl] step {state.global_step}/{state.max_steps} reward "
                      f"{f('reward/mean'):.3f} acc {f('accuracy'):.3f} grad {f('grad_norm'):.3f}", file=sys.stderr)
    return Progress()


def run_train_trl(args, settings: list[str]) -> int:
    """The `train --engine trl` command (``settings``: the resolved ``key=value`` overrides): validate
    everything, then train inside TRL's GRPOTrainer."""
    from opo_theory.lm.models.backend import CHAR_GPT, hf_dir
    from opo_theory.lm.models.pretrained import NAMED
    from opo_theory.lm.training.config import make_config
    from opo_theory.lm.training.run_dir import RunDir
    from opo_theory.validation import require_output_dir

    if args.resume:
        raise ValueError("--resume does not apply to --engine trl (TRL checkpoints are off); start a new --out")
    refuse_other_keys(settings)
    cfg = make_config(args.objective.strip(), args.preset, args.seed, settings, args.steps, args.model)
    if cfg.model == CHAR_GPT:
        raise ValueError(f"--engine trl trains a transformers model: pass --model hf:<dir>, gguf:<file> or a "
                         f"named model ({', '.join(NAMED)}), got {cfg.model!r}")
    data = train_dataset(cfg)              # a bad dataset file is refused before --out is made
    if int(os.environ.get("RANK", "0")) == 0:     # under torchrun only rank 0 checks (before any rank writes)
        out = require_output_dir("--out", args.out)
        RunDir(out).require_empty("--engine trl starts every run afresh (it does not resume) and never writes "
                                   "over files")
    else:
        out = Path(args.out)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from transformers import AutoTokenizer, PrinterCallback

    from opo_theory.integrations.trl import RegistryGRPOTrainer

    model_dir = str(hf_dir(cfg.model))
    trainer = RegistryGRPOTrainer(
        model=model_dir, reward_funcs=task_reward_fn(cfg.shaping, cfg.verifier),
        args=grpo_config(cfg, out, int(os.environ.get("WORLD_SIZE", "1"))),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(model_dir, local_files_only=True),
        objective=cfg.objective, objective_config=cfg.objective_config, diagnostics=None if cfg.grad_split else False,
        twin_grad=cfg.approx_grad, metrics_dir=out,
        run_config={**cfg.to_json(), "engine": "trl", "optimizer_steps": cfg.steps * cfg.ppo_epochs * cfg.minibatches})
    trainer.remove_callback(PrinterCallback)           # TRL's whole log dict per step: one short line instead
    if not args.quiet:
        trainer.add_callback(progress_callback(cfg))
    trainer.train()
    if trainer.accelerator.is_main_process:
        print(f"wrote {RunDir(out).metrics}")
    return 0
