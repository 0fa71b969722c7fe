"""Registry objectives and the toolkit's diagnostics inside TRL 1.16's GRPOTrainer and DPOTrainer.

``RegistryGRPOTrainer(..., objective="opo", objective_config={...})`` trains with any group objective of
the registry (opo in every geometry, opo-exact, gopo, gopo-bounded, grpo, dr-grpo, dapo, gspo, ppo-kl):
it builds a PolicyBatch from TRL's per-token log-probs, old log-probs, completion mask and the
rewards and group ids it stores per row, and calls the registry function (no loss is written here).

Whole groups: every micro-batch holds whole groups (per_device_train_batch_size a multiple of
num_generations; the generation batch is shuffled by group, not by row), and the loss's denominators
come from the optimizer step's global batch (its responses, or its tokens for token-mean) through the
batch's ``normalizer``. Loss, gradient and logged metrics therefore do not change with
gradient_accumulation_steps, per_device_train_batch_size or the number of processes.

OPO: with one update per generation (num_iterations = 1 and steps_per_generation =
gradient_accumulation_steps) the policy is its own anchor, Delta = 0 exactly and the chi² penalty has
zero gradient: use num_iterations >= 2 (the toolkit's trainer uses ppo_epochs = 2).

Diagnostics (names of docs/metrics.md) are appended to TRL's ``self._metrics`` once per optimizer step,
computed on the step's global batch (gathered over micro-batches and processes); ``metrics_dir`` also
writes them as the toolkit's ``metrics.jsonl`` + ``config.json``. Importing this module imports trl.
"""

# ruff: noqa: E402  (the TRL version is checked before the private names of that release are imported)
from __future__ import annotations

import dataclasses
import warnings
from collections import defaultdict
from pathlib import Path

import torch
import trl

SUPPORTED_TRL = "1.16."        # the adapter overrides private GRPOTrainer methods of this release line


class TRLVersionError(ImportError, ValueError):
    """The installed TRL is not the release line whose private methods the adapter overrides."""


def check_trl_version(version: str) -> None:
    """One-line refusal of a TRL outside the supported release line (1.16.x)."""
    if not version.startswith(SUPPORTED_TRL):
        raise TRLVersionError(f"opo_theory.integrations.trl needs trl {SUPPORTED_TRL}x (it overrides private "
                              f"GRPOTrainer methods of that release), found trl {version}: "
                              "pip install 'trl==1.16.0' (the project's [trl] extra)")


check_trl_version(trl.__version__)

from trl import DPOConfig, DPOTrainer, GRPOConfig, GRPOTrainer
from trl.trainer.grpo_trainer import (
    split_pixel_values_by_grid,
    split_tensor_dict,
    unsplit_pixel_values_by_grid,
)

from opo_theory.diagnostics import reward_metrics, split_metrics
from opo_theory.io import provenance
from opo_theory.lm.training.confidence import conf_metrics
from opo_theory.lm.training.record import (
    PRE,
    build_row,
    rollout_record,
    trust_region,
    with_efficiency,
)
from opo_theory.lm.training.run_dir import RunDir
from opo_theory.objectives import DRIVE_KEY, REG_KEY, PolicyBatch, get
from opo_theory.objectives.advantages import advantages

CORRECT_COLUMN = "correct"     # a reward function's log_extra column of per-row correctness -> `accuracy`
# GRPOConfig fields that define TRL's own loss: a registry objective replaces it, so a changed value would
# silently do nothing; each must keep its GRPOConfig default.
TRL_LOSS_FIELDS = ("loss_type", "epsilon", "epsilon_high", "delta", "scale_rewards", "importance_sampling_level",
                   "top_entropy_quantile", "off_policy_mask_threshold", "entropy_coef",
                   "multi_objective_aggregation", "use_bias_correction_kl")
MODEL_INPUT_KEYS = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes",
                    "num_tiles", "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")


def group_objective(objective: str, objective_config: dict | None):
    """(spec, config) of a registry group objective; ValueError naming what is allowed otherwise."""
    spec = get(objective)
    if spec.pairwise:
        raise ValueError(f"objective {objective} is pairwise: train it with RegistryDPOTrainer")
    if not spec.needs_whole_groups:
        raise ValueError(f"objective {objective} is not a group RL objective; RegistryGRPOTrainer takes "
                         f"{', '.join(group_objectives())}")
    return spec, spec.make_config(**(objective_config or {}))


def group_objectives() -> list[str]:
    """Registry objectives a GRPO-style trainer can run (group RL, not pairwise, not supervised)."""
    from opo_theory.objectives import available
    return [n for n in available() if not get(n).pairwise and get(n).needs_whole_groups]


def check_grpo_args(args: GRPOConfig, spec, cfg) -> None:
    """Refuse, with one line, a TRL configuration the registry objective cannot run correctly."""
    g = args.num_generations
    if args.per_device_train_batch_size % g:
        raise ValueError(f"per_device_train_batch_size ({args.per_device_train_batch_size}) must be a multiple of "
                         f"num_generations ({g}): objective {spec.name} needs whole groups in every micro-batch")
    ga, spg = args.gradient_accumulation_steps, args.steps_per_generation
    if spg % ga:
        raise ValueError(f"steps_per_generation ({spg}) must be a multiple of gradient_accumulation_steps ({ga}): "
                         "an optimizer step must take its micro-batches from one generation batch")
    defaults = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}
    for name in TRL_LOSS_FIELDS:
        default = defaults.get(name)
        if name in defaults and getattr(args, name) != default:
            raise ValueError(f"GRPOConfig.{name}={getattr(args, name)!r} has no effect with registry objective "
                             f"{spec.name} (its loss replaces TRL's); leave it at {default!r} and set the "
                             "objective's own hyperparameters in objective_config")
    if spec.needs_reference and args.beta == 0:
        raise ValueError(f"objective {spec.name} needs a reference policy: set GRPOConfig(beta > 0) so TRL loads "
                         "one (the KL coefficient itself is objective_config['beta'])")
    if not spec.needs_reference and args.beta != 0:
        raise ValueError(f"GRPOConfig.beta={args.beta} loads a reference model that objective {spec.name} does "
                         "not use; set beta=0.0")
    if getattr(cfg, "center", "group") == "batch" and args.world_size * ga > 1:
        raise ValueError(f"objective {spec.name} with center='batch' needs the whole optimizer batch in one loss "
                         f"call; got {args.world_size} processes x {ga} accumulation steps (use center='group')")
    if args.use_vllm and args.vllm_importance_sampling_correction:
        raise ValueError(f"GRPOConfig(use_vllm=True) multiplies TRL's per-token loss by its vLLM importance-sampling "
                         f"ratio, which registry objective {spec.name} (a loss over whole responses and groups, "
                         "not a per-token loss) would silently drop; set vllm_importance_sampling_correction=False "
                         "to train on vLLM's samples uncorrected, or generate with transformers (use_vllm=False)")
    if spec.has_opo_drive and args.num_iterations == 1 and spg == ga:
        warnings.warn(f"{spec.name} with one update per generation: Delta = 0 at every update, so its chi² "
                      "penalty is inert; set num_iterations >= 2", stacklevel=3)


def sharded_engine(args: GRPOConfig, trainer=None) -> str | None:
    """'DeepSpeed' or 'FSDP' when parameters or gradients are sharded across processes (from the GRPOConfig,
    or from the built trainer, which also sees an accelerate config), else None."""
    if args.deepspeed or getattr(trainer, "is_deepspeed_enabled", False):
        return "DeepSpeed"
    return "FSDP" if args.fsdp or getattr(trainer, "is_fsdp_enabled", False) else None


def split_allowed(engine: str | None, diagnostics: bool | None) -> bool:
    """Whether the drive/penalty gradient split runs: it all-reduces full per-parameter gradients as DDP holds
    them, which DeepSpeed ZeRO and FSDP shard. None (the default) turns it off there with one warning line;
    True there is refused."""
    if engine is None:
        return True if diagnostics is None else diagnostics
    if diagnostics:
        raise ValueError(f"diagnostics=True (the drive/penalty gradient split) needs whole per-parameter gradients "
                         f"as DDP keeps them; {engine} shards them: pass diagnostics=False or None")
    if diagnostics is None:
        warnings.warn(f"{engine}: the drive/penalty gradient split is off (it needs unsharded gradients)",
                      stacklevel=3)
    return False


def micro_config(spec, cfg, max_completion_length: int):
    """The objective config inside TRL: seq-mean-token-sum-norm's constant is max_completion_length (the
    batch's T depends on how each process pads its generation batch)."""
    if getattr(cfg, "aggregation", None) == "seq-mean-token-sum-norm" and cfg.norm_len is None:
        cfg = dataclasses.replace(cfg, norm_len=float(max_completion_length))
    return cfg


def counts_tokens(spec, cfg) -> bool:
    """True when the objective's denominator is a token count: its config aggregates with token-mean (the token
    family, and gspo/luspo whose per-sequence loss is spread over the sequence's tokens)."""
    return getattr(cfg, "aggregation", None) == "token-mean"


def relabel(group: torch.Tensor) -> torch.Tensor:
    """Group ids renumbered 0..n-1 (in sorted order), as PolicyBatch counts groups by the largest id."""
    return torch.unique(group, return_inverse=True)[1]


def permute_rows(batch: dict, perm: torch.Tensor) -> dict:
    """Every per-row value (tensor with a first dimension, or list) of ``batch`` reordered by ``perm``."""
    def take(v):
        if v is None or (isinstance(v, torch.Tensor) and v.ndim == 0):
            return v
        if isinstance(v, torch.Tensor):
            return v[perm.to(v.device)]
        return [v[i] for i in perm.tolist()]
    return {k: take(v) for k, v in batch.items()}


def group_permutation(n_rows: int, group_size: int) -> torch.Tensor:
    """A random order of whole groups (rows of a group stay together and in order)."""
    order = torch.randperm(n_rows // group_size)
    return (order[:, None] * group_size + torch.arange(group_size)).reshape(-1)


class _Window:
    """What one optimizer step's micro-batches leave for the step's diagnostics (detached)."""

    def __init__(self) -> None:
        self.rows: dict[str, list] = defaultdict(list)
        self.drive: list[torch.Tensor] | None = None
        self.twin: list[torch.Tensor] | None = None

    @staticmethod
    def _add(acc, grads, params):
        grads = [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params, strict=True)]
        return grads if acc is None else [a + g for a, g in zip(acc, grads, strict=True)]


class RegistryGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with a registry group objective as its loss and the toolkit's diagnostics.

    objective, objective_config: a registry name and its hyperparameters (unknown keys refused).
    diagnostics: grad/norm_drive, grad/norm_reg, grad/cos_drive_reg (objectives reporting drive/reg parts:
    one extra autograd.grad per micro-batch) and, for OPO, approx/grad_cos against its twin (one more); None
    (default) means on under one process or DDP and off (one warning) under DeepSpeed or FSDP, which shard the
    gradients the split needs; True there is refused.
    metrics_dir: also write metrics.jsonl and config.json there (main process); run_config goes into config.json.
    """

    def __init__(self, *args, objective: str = "opo", objective_config: dict | None = None,
                 diagnostics: bool | None = None, twin_grad: bool = True, confidence_metrics: bool = True,
                 metrics_dir: str | Path | None = None, run_config: dict | None = None, **kwargs) -> None:
        targs = kwargs.get("args") if len(args) < 3 else args[2]
        if not isinstance(targs, GRPOConfig):
            raise ValueError("RegistryGRPOTrainer needs args=GRPOConfig(...) (num_generations, batch sizes)")
        self.spec, cfg = group_objective(objective, objective_config)
        check_grpo_args(targs, self.spec, cfg)
        requested, diagnostics = diagnostics, split_allowed(sharded_engine(targs), diagnostics)
        self.obj_cfg = micro_config(self.spec, cfg, targs.max_completion_length)
        self.twin = get(self.spec.twin) if twin_grad and diagnostics and self.spec.twin else None
        self.diagnostics, self.confidence_metrics = diagnostics, confidence_metrics
        self._window = _Window()
        self._scored = None
        super().__init__(*args, **kwargs)
        if diagnostics and sharded_engine(targs, self) is not None:          # sharding set by an accelerate config
            self.diagnostics = split_allowed(sharded_engine(targs, self), requested)
            self.twin = self.twin if self.diagnostics else None
        self.run_dir = None if metrics_dir is None else RunDir(metrics_dir)
        if self.run_dir is not None and self.accelerator.is_main_process:
            self.run_dir.start({
                "config": {**(run_config or {}), "objective": objective, "objective_config": objective_config or {}},
                "engine": "trl", "trl": self.args.to_dict(), "provenance": provenance()})

    # ------------------------------------------------------------------ generation: rewards and groups per row
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        correct = self._pending_extra_logs.get(CORRECT_COLUMN)
        self._scored = (rewards_per_func, None if correct is None else list(correct))
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        mode = "train" if self.model.training else "eval"
        g = self.num_generations if mode == "train" else self.num_generations_eval
        prompts = [str(x.get("prompt")) for x in inputs]
        if len(prompts) % g or any(len(set(prompts[i:i + g])) > 1 for i in range(0, len(prompts), g)):
            raise ValueError(f"this process's generation batch does not hold whole groups of {g} consecutive rows "
                             "of one prompt (a custom sampler or an iterable dataset?): the objective needs them")
        out = super()._generate_and_score_completions(inputs)
        rewards_per_func, correct = self._scored
        if torch.isnan(rewards_per_func).all(dim=1).any():
            raise ValueError("every reward function returned None for a completion: registry objectives need a "
                             "finite reward for each")
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device)[None]).nansum(dim=1)
        n, rank = len(inputs), self.accelerator.process_index
        device = out["completion_mask"].device
        out["rewards"] = rewards[rank * n:(rank + 1) * n].to(device)
        out["group"] = (torch.arange(n, device=device) + rank * n) // g     # ids unique in the generation batch
        if correct is not None and len(correct) == n:
            out[CORRECT_COLUMN] = torch.tensor([float(c) for c in correct], device=device)
        return out

    def _prepare_inputs(self, generation_batch):
        """TRL's buffering, with the generation batch shuffled by whole groups and each micro-batch told the
        size (responses, tokens) of its optimizer step's global batch."""
        if not self.model.training:
            return super()._prepare_inputs(generation_batch)
        spg = self.args.steps_per_generation
        if self._step % (spg * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = split_pixel_values_by_grid(self._generate_and_score_completions(generation_batch))
            batch = permute_rows(batch, group_permutation(len(batch["group"]), self.num_generations))
            chunks = split_tensor_dict(batch, spg)
            self._set_window_sizes(chunks)
            self._buffered_inputs = [unsplit_pixel_values_by_grid(c) for c in chunks]
        return self._buffered_inputs[self._step % spg]

    def _set_window_sizes(self, chunks: list[dict]) -> None:
        ga = self.args.gradient_accumulation_steps
        local = torch.stack([torch.stack([self._loss_mask(c).sum().double(),
                                          torch.tensor(float(len(c["group"])), dtype=torch.float64,
                                                       device=c["group"].device)]) for c in chunks])
        total = self.accelerator.reduce(local, reduction="sum").view(-1, ga, 2).sum(1)     # [windows, 2]
        for k, c in enumerate(chunks):
            c["window_tokens"], c["window_rows"] = total[k // ga, 0], total[k // ga, 1]

    @staticmethod
    def _loss_mask(inputs) -> torch.Tensor:
        mask = inputs["completion_mask"]
        return mask if "tool_mask" not in inputs else mask * inputs["tool_mask"]

    # ------------------------------------------------------------------ the loss: the registry's
    def policy_batch(self, model, inputs, normalizer: float | None = None) -> PolicyBatch:
        """The PolicyBatch of one micro-batch: TRL's log-probs (with graph), anchor, mask, rewards, groups, and
        the loss denominator ``normalizer`` (step_normalizer; None: the micro-batch's own)."""
        completion_ids = inputs["completion_ids"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        logp, entropy, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True,
            **{k: inputs.get(k) for k in MODEL_INPUT_KEYS})
        old = inputs.get("old_per_token_logps")
        return PolicyBatch(logp=logp, logp_old=logp.detach() if old is None else old,
                           mask=self._loss_mask(inputs).to(logp.dtype), group=relabel(inputs["group"]),
                           rewards=inputs["rewards"], logp_ref=inputs.get("ref_per_token_logps"),
                           entropy=None if entropy is None else entropy.detach(), normalizer=normalizer)

    def step_normalizer(self, inputs) -> float | None:
        """The loss denominator of one micro-batch (PolicyBatch.normalizer): the optimizer step's global one
        divided by (processes x accumulation steps), so summing the micro-batches' losses over accumulation
        (TRL divides by it) and averaging over processes (DDP) gives the global batch's loss."""
        if "window_rows" not in inputs:
            return None
        total = inputs["window_tokens"] if counts_tokens(self.spec, self.obj_cfg) else inputs["window_rows"]
        share = self.accelerator.num_processes * self.current_gradient_accumulation_steps
        return float(total) / share

    def _compute_loss(self, model, inputs):
        train = self.model.training
        batch = self.policy_batch(model, inputs, self.step_normalizer(inputs) if train else None)
        cfg = self.obj_cfg
        loss, parts = self.spec(batch, cfg)
        scale = 1.0 / self.current_gradient_accumulation_steps if train else 1.0
        if train:
            self._record(model, batch, inputs, parts, cfg, scale)
        else:
            for k, v in parts.items():
                self._metrics["eval"][k].append(self.accelerator.gather(v.detach().float()).mean().item())
        return loss * scale

    # ------------------------------------------------------------------ diagnostics
    def _params(self, model) -> list[torch.Tensor]:
        return [p for p in model.parameters() if p.requires_grad]

    def _record(self, model, batch, inputs, parts, cfg, scale) -> None:
        w = self._window
        rows = {"logp": batch.logp.detach(), "logp_old": batch.logp_old, "mask": batch.mask,
                "group": inputs["group"], "rewards": batch.rewards, "entropy": batch.entropy,
                "logp_ref": batch.logp_ref, CORRECT_COLUMN: inputs.get(CORRECT_COLUMN)}
        for k, v in rows.items():
            if v is not None:
                w.rows[k].append(v)
        if not self.diagnostics:
            return
        params = self._params(model)
        if DRIVE_KEY in parts and REG_KEY in parts:
            w.drive = w._add(w.drive, torch.autograd.grad(parts[DRIVE_KEY] * scale, params, retain_graph=True,
                                                          allow_unused=True), params)
        if self.twin is not None:
            twin_loss = self.twin(batch, cfg)[0]
            w.twin = w._add(w.twin, torch.autograd.grad(twin_loss * scale, params, retain_graph=True,
                                                        allow_unused=True), params)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.after_backward(model)
        return loss

    def after_backward(self, model) -> None:
        """At an optimizer step's last micro-batch (gradients reduced, not yet clipped): log its diagnostics."""
        if self.accelerator.sync_gradients:
            window, self._window = self._window, _Window()
            for k, v in self.step_metrics(model, window).items():
                self._metrics["train"][k].append(v)

    def _gather_rows(self, rows: dict[str, list]) -> dict[str, torch.Tensor]:
        """Each per-row field of the window, concatenated over micro-batches and gathered over processes."""
        out = {}
        width = max(t.shape[1] for t in rows["mask"])
        for k, parts in rows.items():
            if parts[0].dim() == 2:
                parts = [torch.nn.functional.pad(t, (0, width - t.shape[1])) for t in parts]
            x = torch.cat(parts)
            if x.dim() == 2:
                x = self.accelerator.pad_across_processes(x, dim=1, pad_index=0)
            out[k] = self.accelerator.gather(x)
        return out

    def global_batch(self, window: _Window) -> tuple[PolicyBatch, torch.Tensor | None]:
        """The optimizer step's whole batch (every micro-batch of every process) and its correctness."""
        r = self._gather_rows(window.rows)
        batch = PolicyBatch(logp=r["logp"], logp_old=r["logp_old"], mask=r["mask"], group=relabel(r["group"]),
                            rewards=r["rewards"], entropy=r.get("entropy"), logp_ref=r.get("logp_ref"))
        return batch, r.get(CORRECT_COLUMN)

    def step_metrics(self, model, window: _Window) -> dict[str, float]:
        """Every diagnostic of one optimizer step, the same on every process (record.build_row): the update's
        (the objective's metrics, conf/*, entropy, the gradient's), the rollout's (rewards, accuracy) and the
        trust region at the loss calls, before this step's update (`pre/` keys: the trainer's unprefixed ones
        are measured after its updates)."""
        batch, correct = self.global_batch(window)
        update: dict[str, float] = {}
        if self.confidence_metrics:
            leaf = batch.logp.clone().requires_grad_(True)
            loss, parts = self.spec(batch.with_(logp=leaf), self.obj_cfg)
            update.update(conf_metrics(batch, torch.autograd.grad(loss, leaf)[0]))
        else:
            with torch.no_grad():
                _, parts = self.spec(batch, self.obj_cfg)
        update.update({k: float(v.detach()) for k, v in parts.items()})       # every metric the objective returns
        if batch.entropy is not None:
            update["entropy/mean"] = float((batch.entropy * batch.mask).sum() / batch.mask.sum())
        if self.diagnostics:
            update.update(self._gradient_split(model, window, batch))
        rollout = {**rollout_record(batch.rewards, batch.group, correct=correct),
                   "reward/std": reward_metrics(batch)["reward/std"]}
        return build_row(update=update, rollout=rollout, pre=trust_region(batch, self.spec.name, self.obj_cfg, PRE))

    def _gradient_split(self, model, window: _Window, batch: PolicyBatch) -> dict[str, float]:
        """grad/norm, its drive/reg split and approx/grad_cos from the reduced, pre-clip gradient."""
        params = self._params(model)
        total = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        drive = None if window.drive is None else self._mean_over_processes(window.drive)
        twin = None if window.twin is None else self._mean_over_processes(window.twin)
        return with_efficiency(split_metrics(total, drive, twin), advantages(batch, "centered"))

    def _mean_over_processes(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.accelerator.num_processes == 1:
            return grads
        flat = self.accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
        return [t.view_as(g) for t, g in zip(torch.split(flat, [g.numel() for g in grads]), grads, strict=True)]

    # ------------------------------------------------------------------ the toolkit's metrics.jsonl
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        if self.run_dir is not None and self.model.training and self.accelerator.is_main_process \
                and "loss" in self.state.log_history[-1]:
            self.run_dir.append_row(toolkit_row(self.state.log_history[-1], self.steps_per_round()))

    def steps_per_round(self) -> int:
        """Optimizer steps per generation round: num_iterations x steps_per_generation / accumulation steps."""
        a = self.args
        return a.num_iterations * a.steps_per_generation // a.gradient_accumulation_steps


def toolkit_row(entry: dict, steps_per_round: int = 1) -> dict:
    """One TRL log entry as a toolkit metrics row: ``step`` = the row's index from 0 (one row per optimizer step
    here, one per generation round in the trainer; record.WHEN), ``generation`` = the generation round its
    optimizer step trained on (step // steps_per_round: the trainer's `step`), grad/norm and entropy/mean named
    as the toolkit names them (when the diagnostics did not already log them); TRL's own keys kept."""
    opt_step = int(entry["step"]) - 1
    row = {"step": opt_step, "generation": opt_step // steps_per_round,
           **{k: v for k, v in entry.items() if k != "step"}}
    if "grad_norm" in row:
        row.setdefault("grad/norm", row["grad_norm"])
    if "entropy" in row:
        row.setdefault("entropy/mean", row["entropy"])
    return row


# ---------------------------------------------------------------------- pairwise: DPOTrainer
# DPOConfig fields that define TRL's own DPO loss, with their trl 1.16 defaults.
DPO_LOSS_FIELDS = {"loss_type": ["sigmoid"], "loss_weights": None, "ld_alpha": None,
                   "f_divergence_type": "reverse_kl", "label_smoothing": 0.0, "use_weighting": False}


class RegistryDPOTrainer(DPOTrainer):
    """TRL's DPOTrainer with a registry pairwise objective (dpo, ipo, chipo) as its loss.

    The batch is TRL's [chosen; rejected]: pair k is rows (k, N + k); Delta is taken against TRL's reference
    log-probs (per token, or a precomputed sequence sum spread evenly over the tokens: the registry's sum and
    mean log-ratios are linear, so they are unchanged). loss_is_scaled_for_ga = False: HF divides by the
    accumulation steps. Logs every metric the objective returns, averaged over processes.
    """

    def __init__(self, *args, objective: str = "dpo", objective_config: dict | None = None, **kwargs) -> None:
        targs = kwargs.get("args") if len(args) < 3 else args[2]
        self.spec = get(objective)
        if not self.spec.pairwise:
            raise ValueError(f"objective {objective} is not pairwise: train it with RegistryGRPOTrainer")
        self.obj_cfg = self.spec.make_config(**(objective_config or {}))
        if isinstance(targs, DPOConfig):
            for name, default in DPO_LOSS_FIELDS.items():
                if getattr(targs, name, default) != default:
                    raise ValueError(f"DPOConfig.{name}={getattr(targs, name)!r} has no effect with registry "
                                     f"objective {objective}; leave it at {default!r}")
        super().__init__(*args, **kwargs)

    def pair_batch(self, model, inputs) -> PolicyBatch:
        """PolicyBatch of TRL's [chosen; rejected] batch with per-token policy and reference log-probs."""
        model_kwargs = {k: v for k, v in inputs.items()
                        if k not in ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")}
        model_kwargs["use_cache"] = False
        mask = inputs["completion_mask"][..., 1:]
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        logp = outputs.log_probs[:, -mask.size(1):]
        mask = mask.to(logp.dtype)
        if self.precompute_ref_logps:
            ref_sum = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]]).to(logp.dtype)
            ref = mask * (ref_sum / mask.sum(-1).clamp_min(1))[:, None]
        else:
            ref = torch.cat(self.compute_ref_log_probs_per_token(model_kwargs, labels, mask.size(1)))
        n = logp.shape[0] // 2
        idx = torch.arange(n, device=logp.device)
        return PolicyBatch(logp=logp, logp_old=logp.detach(), mask=mask, group=torch.cat([idx, idx]),
                           rewards=torch.cat([torch.ones(n), torch.zeros(n)]).to(logp),
                           logp_ref=ref, chosen=idx, rejected=idx + n,
                           entropy=outputs.entropy[:, -mask.size(1):].detach())

    def compute_ref_log_probs_per_token(self, model_kwargs, labels, width):
        if self.ref_model is None:
            raise ValueError("RegistryDPOTrainer needs a reference model: pass ref_model, or set "
                             "DPOConfig(precompute_ref_log_probs=True); PEFT adapters as the reference are not supported")
        with torch.no_grad():
            out = self.ref_model(**model_kwargs, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -width:].chunk(2)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        batch = self.pair_batch(model, inputs)
        loss, parts = self.spec(batch, self.obj_cfg)
        for k, v in parts.items():
            self._metrics[mode][k].append(self.accelerator.gather(v.detach().float()).mean().item())
        ent = (batch.entropy * batch.mask).sum() / batch.mask.sum().clamp_min(1)
        self._metrics[mode]["entropy/mean"].append(self.accelerator.gather(ent).mean().item())
        if return_outputs:
            raise ValueError("RegistryDPOTrainer does not return outputs (TRL deprecates return_outputs)")
        return loss
