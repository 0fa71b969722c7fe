"""Trainer configuration: one frozen dataclass, named presets, `--set key=value` overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

from opo_theory.lm.models.backend import CHAR_GPT, MODEL_SPECS, check_model_spec, model_fingerprint
from opo_theory.lm.tasks.arithmetic import LEVELS, PROMPT_FORMATS, SPLIT_SIZES, VERIFIERS
from opo_theory.lm.tasks.dataset import NONE, file_sha256
from opo_theory.objectives import available, get
from opo_theory.settings import parse_overrides
from opo_theory.validation import (
    Checked,
    Flag,
    Interval,
    IntRange,
    Matches,
    OneOf,
    require_choice,
    require_size,
    show,
)

MAX_SEED = 2**32 - 1
MAX_ROLLOUTS = 2**20        # prompts_per_step x group_size
MAX_PARAMS = 10**10         # about 12 n_layer n_embd^2 for the char GPT


def check_objective_values(objective: str, values: dict) -> None:
    """Objective hyperparameters from ``--set objective.KEY=VALUE`` must have their default's type: a string
    for a string, true/false for a bool, a finite number (or None where the default is None) otherwise;
    the objective's own config then checks their ranges."""
    defaults = get(objective).make_config()
    for key, v in values.items():
        d = getattr(defaults, key, None)        # an unknown key is reported by make_config
        if isinstance(d, bool) or isinstance(d, str):
            ok = isinstance(v, type(d))
        else:
            ok = (v is None and d is None) or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v))
        if not ok:
            kind = {bool: "true or false", str: "a string"}.get(type(d), "a finite number" + (" or None" if d is None else ""))
            raise ValueError(f"objective {objective} setting {key} must be {kind}, got {show(v)}")


# Fields the SFT warm-up never reads (the RL loop's, and where the cache lives); every other field, a new one
# included, goes into the SFT cache key (tests/test_reliability.py checks the warm-up reads none of these).
RL_ONLY_FIELDS = frozenset({
    "objective", "preset", "seed", "objective_config", "shaping", "steps", "prompts_per_step", "group_size",
    "temperature", "top_p", "lr", "weight_decay", "grad_clip", "ppo_epochs", "minibatches", "val_every",
    "checkpoint_every", "approx_grad", "grad_split", "trust_region_metrics", "bf16", "peak_tflops", "compile",
    "dynamic_sampling", "dynamic_sampling_rounds", "overlong_buffer", "train_fraction", "prompt_sampling",
    "sft_cache", "threads", "report_to"})
RUNTIME_FIELDS = ("steps", "device", "peak_tflops", "compile", "report_to", "threads")   # a run may resume with other values


def setting(default, range, help: str, **kw):
    """A TrainConfig field with its allowed range (checked in __post_init__, printed by --list-settings) and
    its one-line meaning. To add a field: ``name: type = setting(default, IntRange(1, 100), "what it does")``
    with a range from opo_theory.validation (IntRange, Interval, OneOf, Flag, Matches, Checked); checks that
    tie several fields together go at the end of __post_init__."""
    return field(default=default, metadata={"range": range, "help": help}, **kw)


COUNT = IntRange(1, None)   # an every-N-steps period


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on. objective_config holds the objective's own hyperparameters.

    The upper limits of the integer ranges keep a hostile value from exhausting memory or time."""

    objective: str = setting("opo", OneOf(available), "registered objective (--objective)")
    preset: str = setting("cpu-tiny", OneOf(lambda: PRESETS), "named preset the other values start from (--preset)")
    seed: int = setting(0, IntRange(0, MAX_SEED), "RL seed: sampling and minibatch order (--seed)")
    objective_config: dict = field(default_factory=dict, metadata={
        "help": "the objective's own hyperparameters (--set objective.KEY=VALUE)"})
    model: str = setting(CHAR_GPT, Checked(check_model_spec, MODEL_SPECS),
                         "policy: the built-in char GPT, a named pretrained model, a local transformers causal LM "
                         "or a local GGUF file (--model)")
    n_layer: int = setting(3, IntRange(1, 1_024), "char GPT: transformer blocks")
    n_head: int = setting(4, IntRange(1, 1_024), "char GPT: attention heads (must divide n_embd)")
    n_embd: int = setting(96, IntRange(1, 65_536), "char GPT: embedding width")
    # task
    train_level: int = setting(3, OneOf(LEVELS), "arithmetic difficulty level RL trains and validates on")
    ood_level: int = setting(4, OneOf(LEVELS), "harder level for the out-of-distribution accuracy")
    pool_size: int = setting(4000, IntRange(1, 10**6), "training problems drawn from the train split")
    val_size: int = setting(200, IntRange(1, 10**5), "validation problems per level (greedy accuracy)")
    shaping: float = setting(0.0, Interval(0.0, 1.0), "partial credit for a well-formed wrong answer")
    prompt_format: str = setting("raw", OneOf(PROMPT_FORMATS), "raw: '12+34='; chat: the tokenizer's chat "
                                 "template asking 'What is 12+34? Answer with the number only.'")
    verifier: str = setting("strict", OneOf(tuple(VERIFIERS)), "strict: the completion is exactly the answer; "
                            "lenient: the last number in the completion is the answer; exact: as strict, any "
                            "non-empty text well formed (for non-numeric answers)")
    dataset: str = setting(NONE, Matches(r"(?s).+", "none or the path of a JSONL file"),
                           "none: the built-in arithmetic levels; else a JSONL file of your own problems "
                           "({\"prompt\", \"answer\"} per line; README, Your own data and reward), split into "
                           "train/val by sft_seed, no OOD set (train_level, ood_level unused)")
    dataset_sha256: str = setting("", Matches(r"|[0-9a-f]{64}", "empty or 64 hex digits"),
                                  "the dataset file's SHA-256, recorded when the config is made (not settable): "
                                  "a changed file is a different run and a different SFT warm-up")
    # SFT warm-up (shared by every RL run with the same model/task/SFT settings)
    sft_seed: int = setting(0, IntRange(0, MAX_SEED), "seed of the SFT warm-up (and of the char GPT's weights)")
    sft_max_steps: int = setting(3000, IntRange(0, 10**7), "SFT step limit (0: RL starts from the model as loaded)")
    sft_batch: int = setting(128, IntRange(1, 65_536), "SFT batch size")
    sft_lr: float = setting(3e-3, Interval(0.0, 1.0, low_open=True), "SFT learning rate (AdamW)")
    sft_target_accuracy: float = setting(0.35, Interval(0.0, 1.0), "SFT stops early at this greedy val accuracy")
    sft_eval_every: int = setting(250, COUNT, "SFT steps between accuracy checks")
    sft_cache: str = setting("runs/sft-cache", Matches(r"(?s).+", "a non-empty directory path"),
                             "directory of cached SFT warm-ups (keyed by a hash of their settings); relative: "
                             "from the repository root of a clone")
    # RL
    steps: int = setting(100, IntRange(1, 10**6), "RL steps (rollout batch + updates)")
    prompts_per_step: int = setting(32, IntRange(1, 65_536), "prompts per RL step (divisible by minibatches)")
    group_size: int = setting(6, IntRange(1, 4_096), "responses sampled per prompt (the group)")
    max_new: int = setting(8, IntRange(1, 1_024), "longest response in tokens")
    temperature: float = setting(1.0, Interval(0.0, 10.0), "sampling temperature (0: greedy)")
    top_p: float = setting(1.0, Interval(1e-6, 1.0), "nucleus sampling mass (below 1e-6 float32 probabilities "
                                                      "keep no token)")
    lr: float = setting(1e-4, Interval(0.0, 1.0, low_open=True), "RL learning rate (AdamW moves each weight by up "
                                                                  "to lr per step)")
    weight_decay: float = setting(0.0, Interval(0.0), "AdamW weight decay")
    grad_clip: float = setting(1.0, Interval(0.0, low_open=True), "global gradient-norm clip")
    # >1 update per rollout batch: at the anchor (Delta = 0) the chi² penalty has zero gradient, so with
    # one update OPO's mu would never act
    ppo_epochs: int = setting(2, IntRange(1, 1_000), "passes over each rollout batch")
    minibatches: int = setting(2, IntRange(1, 65_536), "updates per pass (prompts split evenly)")
    val_every: int = setting(25, COUNT, "RL steps between validation/OOD accuracy rows")
    checkpoint_every: int = setting(25, COUNT, "RL steps between resumable checkpoints")
    approx_grad: bool = setting(True, Flag(), "OPO: cosine of exact-vs-surrogate gradients (one extra backward)")
    grad_split: bool = setting(True, Flag(), "drive/regularizer gradient split (one extra backward)")
    trust_region_metrics: bool = setting(True, Flag(), "Delta/ratio/kl moments after the updates (one extra forward)")
    device: str = setting("cpu", Matches(r"cpu|cuda(:\d+)?", "cpu, cuda, cuda:<index>"), "torch device")
    bf16: bool = setting(False, Flag(), "bf16 autocast for every forward (weights stay float32)")
    peak_tflops: float = setting(0.0, Interval(0.0), "for throughput/mfu; 0 = the CUDA device's dense bf16 peak")
    compile: bool = setting(False, Flag(), "torch.compile the policy (measured: see README, Performance)")
    threads: int = setting(1, IntRange(0, 1_024), "torch CPU threads (torch.set_num_threads; 0: torch's own "
                           "default). 1: on this 2-core machine 2 threads ran 7.7x slower (README)")
    report_to: str = setting("none", Matches(r"none|[a-z_]+(,[a-z_]+)*", "none or a comma list of TRL/transformers "
                                             "integrations, e.g. tensorboard"),
                             "--engine trl: where TRL also reports its logs (metrics.jsonl is always written)")
    # DAPO's batch and reward shaping (its paper: both on; its released configs and the OPO paper's: both off)
    dynamic_sampling: bool = setting(False, Flag(), "DAPO: drop groups whose rewards are all equal and sample "
                                                    "more prompts until the batch is full")
    dynamic_sampling_rounds: int = setting(4, IntRange(1, 1_000), "DAPO: most rollout rounds per step (then the "
                                                                  "batch is topped up with uninformative groups)")
    overlong_buffer: int = setting(0, IntRange(0, 1_024), "DAPO soft overlong punishment: reward falls linearly "
                                                          "to -1 over the last N tokens before max_new (0: off)")
    # Exp 2's data-scarce design
    train_fraction: float = setting(1.0, Interval(0.0, 1.0, low_open=True),
                                    "share of the train pool RL draws its prompts from")
    prompt_sampling: str = setting("replacement", OneOf(("replacement", "epochs")),
                                   "replacement: prompts drawn uniformly each step; epochs: without replacement, "
                                   "reshuffled every pass")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):           # each field's own range (its metadata)
            if "range" in f.metadata:
                f.metadata["range"].check(f.name, getattr(self, f.name))
        check_objective_values(self.objective, self.objective_config)
        get(self.objective).make_config(**self.objective_config)     # validates its keys/values
        if self.dataset != NONE and not self.dataset_sha256:      # a new config: the file's content now
            object.__setattr__(self, "dataset_sha256", file_sha256(self.dataset))
        for name, level, split in (("pool_size", self.train_level, "train"), ("val_size", self.train_level, "val"),
                                   ("val_size", self.ood_level, "val")):
            if self.dataset == NONE and getattr(self, name) > SPLIT_SIZES[level, split]:
                raise ValueError(f"{name} must be at most {SPLIT_SIZES[level, split]} (the number of distinct "
                                 f"level-{level} {split} problems), got {getattr(self, name)}")
        if 0 < self.temperature < 1e-6:
            raise ValueError(f"temperature must be 0 (greedy) or at least 1e-06 (logits / temperature overflow "
                             f"float32 below), got {self.temperature!r}")
        if self.lr * self.weight_decay >= 1:
            raise ValueError(f"lr x weight_decay must be below 1 (AdamW scales every weight by 1 - lr x weight_decay "
                             f"each step), got lr {self.lr!r} x weight_decay {self.weight_decay!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        require_size("prompts_per_step x group_size (rollouts per step)", self.prompts_per_step * self.group_size,
                     MAX_ROLLOUTS)
        require_size("12 n_layer n_embd^2 (model parameters)", 12 * self.n_layer * self.n_embd**2, MAX_PARAMS)
        if self.prompts_per_step % self.minibatches:
            raise ValueError(f"prompts_per_step ({self.prompts_per_step}) must be divisible by "
                             f"minibatches ({self.minibatches})")
        if self.overlong_buffer > self.max_new:
            raise ValueError(f"overlong_buffer must be at most max_new ({self.max_new}), got {self.overlong_buffer}")
        if self.prompt_sampling == "epochs" and self.rl_pool_size() < self.prompts_per_step:
            raise ValueError(f"prompt_sampling=epochs needs at least prompts_per_step ({self.prompts_per_step}) "
                             f"RL problems; train_fraction x pool_size gives {self.rl_pool_size()}")

    def rl_pool_size(self) -> int:
        """Problems RL draws prompts from: the first round(train_fraction x pool_size) of the train pool (>= 1)."""
        return max(1, round(self.train_fraction * self.pool_size))

    def epochs(self) -> float:
        """Passes over the RL problems in ``steps`` steps (prompts_per_step x steps / rl_pool_size)."""
        return self.prompts_per_step * self.steps / self.rl_pool_size()

    def to_json(self) -> dict:
        """Every setting; prompt_format and verifier only where not raw/strict (task_view)."""
        d = dataclasses.asdict(self)
        for k in TASK_VIEW_DEFAULTS:
            d.pop(k)
        return {**d, **self.task_view()}

    def sft_key(self) -> str:
        """Hash of everything the SFT warm-up reads: every field but RL_ONLY_FIELDS (the task pools and prompt
        width, the model shape, every SFT setting; a new field is in it unless listed there), with an hf
        model's files by their fingerprint, a dataset by its SHA-256 (and neither where unset: keys from before stay)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in RL_ONLY_FIELDS
                  and not (f.name in DATASET_FIELDS and getattr(self, f.name) == DATASET_FIELDS[f.name])}
        if self.model != CHAR_GPT:
            fields["model"] = model_fingerprint(self.model)
        if self.dataset_sha256:          # a dataset by its content: the same file elsewhere finds the same warm-up
            fields.pop("dataset", None)
        blob = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def task_view(self) -> dict:
        """How the task is shown and judged (prompt_format, verifier) and whose data it is (dataset and its SHA-256),
        where not the original raw/strict/none: runs, configs and caches from before these settings existed keep
        their identity and keys."""
        return {k: getattr(self, k) for k, default in TASK_VIEW_DEFAULTS.items() if getattr(self, k) != default}

    def identity(self) -> dict:
        """What makes two runs the same run (everything except how long it runs, where and how fast)."""
        d = self.to_json()
        for k in RUNTIME_FIELDS:
            d.pop(k)
        return d


DATASET_FIELDS = {"dataset": NONE, "dataset_sha256": ""}
TASK_VIEW_DEFAULTS = {"prompt_format": "raw", "verifier": "strict", **DATASET_FIELDS}
FLAG_FIELDS = ("objective", "preset", "seed", "objective_config", "model")   # set by their own options
DERIVED_FIELDS = ("dataset_sha256",)          # computed from other settings, never set


def settable_fields() -> list[dataclasses.Field]:
    """The TrainConfig fields ``--set KEY=VALUE`` (and a ``--config`` file) may set."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name not in FLAG_FIELDS + DERIVED_FIELDS]


PRESETS = {
    # SFT + 100 RL steps in a few minutes on 2 CPU cores. One level below the paper's L3/L4 mirror:
    # this 0.3M-parameter model reaches only ~0.12 greedy accuracy on L3 in 3000 SFT steps, too weak
    # a start for RL to improve within 100 steps; on L2 it passes the 0.35 target in ~1750 steps.
    # 64 prompts x 8 responses per step: smaller batches were too noisy to move accuracy in 100 steps.
    "cpu-tiny": {"train_level": 2, "ood_level": 3, "prompts_per_step": 64, "group_size": 8},
    # Exp 2's data-scarce design at cpu-tiny: 10% of the train pool (400 problems), 8 epochs without
    # replacement (64 prompts x 50 steps / 400 = 8 passes), validation every 10 steps.
    "cpu-tiny-scarce": {"train_level": 2, "ood_level": 3, "prompts_per_step": 64, "group_size": 8,
                        "train_fraction": 0.1, "prompt_sampling": "epochs", "steps": 50, "val_every": 10,
                        "checkpoint_every": 10},
    # >= 10M parameters, bf16 autocast, sized for one H100 (not run in this repository's CI).
    "gpu-small": {"n_layer": 8, "n_head": 8, "n_embd": 384, "prompts_per_step": 64, "group_size": 8,
                  "steps": 400, "sft_batch": 512, "sft_max_steps": 6000, "sft_lr": 1e-3, "lr": 1e-4,
                  "sft_target_accuracy": 0.5, "pool_size": 20000, "val_size": 500, "device": "cuda",
                  "bf16": True, "val_every": 20, "checkpoint_every": 50},
    # SmolLM2-135M-Instruct on 2 CPU cores: RL from the model as loaded (no SFT: the char GPT's SFT lr 3e-3
    # destroyed it in 6 steps), lr 1e-6 (1e-4 moved |Delta| to ~50 nats in one AdamW step), its chat template
    # and the lenient verifier (it answers "3 + 8 = 11"), signed one-digit sums (level 6), small shapes, bf16
    # autocast (the CPU has AMX), the extra diagnostics off (each is one more forward/backward).
    "smollm2-cpu": {"model": "smollm2-135m", "train_level": 6, "ood_level": 2, "pool_size": 576, "val_size": 64,
                    "sft_max_steps": 0, "prompt_format": "chat", "verifier": "lenient", "lr": 1e-6,
                    "prompts_per_step": 8, "group_size": 8, "max_new": 16, "ppo_epochs": 2, "minibatches": 1,
                    "temperature": 0.7, "bf16": True, "approx_grad": False, "grad_split": False,
                    "trust_region_metrics": False, "steps": 4, "val_every": 7, "checkpoint_every": 5},
}


def make_config(objective: str, preset: str, seed: int = 0, settings: list[str] | None = None,
                steps: int | None = None, model: str | None = None) -> TrainConfig:
    """Resolve preset + ``--set`` overrides (``objective.KEY=VALUE`` sets an objective hyperparameter)."""
    require_choice("preset", preset, PRESETS)
    require_choice("objective", objective, available())
    base = {**PRESETS[preset]}
    plain = [s for s in settings or [] if not s.startswith("objective.")]
    obj = [s for s in settings or [] if s.startswith("objective.")]      # errors name the key as given
    defaults = {f.name: f.default for f in settable_fields()}
    defaults.update(base)
    base.update(parse_overrides(plain, defaults, "train"))
    obj_defaults = {f"objective.{k}": v for k, v in get(objective).make_config().__dict__.items()}
    objective_config = {k.removeprefix("objective."): v
                        for k, v in parse_overrides(obj, obj_defaults, f"objective {objective}").items()}
    if steps is not None:
        base["steps"] = steps
    if model is not None:
        base["model"] = model
    return TrainConfig(objective=objective, preset=preset, seed=seed, objective_config=objective_config, **base)
