"""The RL loop: rollouts (rollout.py), frozen anchor, registry objective, AdamW, clipping, diagnostics,
atomic checkpoints and exact resume. The trainer defines no loss of its own.

A run: ``resumable = prepare_run_dir(cfg, out, resume)`` (checks before any work), ``pools = task_pools(cfg)``,
``model, sft_info = warm_start(cfg, pools)`` (the SFT policy), ``Trainer(cfg, out, model, sft_info, pools,
resumable).run()``; ``start_run`` does the four in that order."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from opo_theory.io import json_line, provenance, read_jsonl
from opo_theory.lm.models.backend import param_groups, use_threads
from opo_theory.lm.models.sampling import generate, response_logprobs, response_mask
from opo_theory.lm.progress import Interrupted, note
from opo_theory.lm.tasks.arithmetic import reward
from opo_theory.lm.training.checkpoint import load_weights
from opo_theory.lm.training.config import TrainConfig
from opo_theory.lm.training.record import build_row, rollout_record, trust_region, with_efficiency
from opo_theory.lm.training.rollout import autocast, collect, draw, rollout, rollout_batch
from opo_theory.lm.training.run_dir import (
    CONFIG,
    PRE_RL,
    SUMMARY_KEYS,
    RunDir,
    RunDirError,
    run_record,
    run_summary,
)
from opo_theory.lm.training.sft import accuracy, prompt_width, task_pools, warm_start
from opo_theory.lm.training.throughput import clock, peak_flops, rl_step_flops
from opo_theory.lm.training.update import policy_update
from opo_theory.objectives import PolicyBatch, get
from opo_theory.objectives.advantages import advantages
from opo_theory.objectives.shaping import informative_groups

__all__ = ["PRE_RL", "RunDirError", "Trainer", "prepare_run_dir", "start_run"]


def prepare_run_dir(cfg: TrainConfig, out: str | Path, resume: bool = False, quiet: bool = False) -> bool:
    """The checks a run makes before any work (the SFT warm-up included): the device exists and ``out`` is new
    or holds this run; notes what the run will do. True when ``out`` holds this run's checkpoint to resume."""
    out = Path(out)
    use_threads(cfg.threads)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {cfg.device!r} requested but CUDA is not available; use --set device=cpu")
    run_dir = RunDir(out)
    started = run_dir.started()
    resumable = run_dir.check(cfg, resume)
    if not resumable:
        label = run_label(cfg)
        note(f"{label} {out} has no checkpoint yet: starting it over from step 0" if started else
             f"{label} nothing to resume in {out} (no run there yet): starting a new run of {cfg.steps} "
             "steps" if resume else f"{label} training {cfg.steps} steps into {out}", quiet)
    return resumable


def run_label(cfg: TrainConfig) -> str:
    return f"[{cfg.objective} seed {cfg.seed}]"


def start_run(cfg: TrainConfig, out: str | Path, resume: bool = False, quiet: bool = False) -> Trainer:
    """A Trainer for ``cfg`` in ``out``, built in the order that matters: check the run dir (a bad one costs
    nothing), warm-start the policy by SFT (cached), then set up the RL state (resumed from its checkpoint)."""
    resumable = prepare_run_dir(cfg, out, resume, quiet)
    pools = task_pools(cfg)
    model, sft_info = warm_start(cfg, pools, quiet)
    return Trainer(cfg, out, model, sft_info, pools, resumable, quiet)


class Trainer:
    """One RL run: ``run()`` trains ``cfg.steps`` steps, writing metrics.jsonl/config.json/checkpoint.pt."""

    def __init__(self, cfg: TrainConfig, out: str | Path, model, sft_info: dict, pools: dict,
                 resumable: bool = False, quiet: bool = False) -> None:
        """RL state for the SFT policy ``model`` (warm_start) on ``pools`` (task_pools); ``resumable`` (what
        prepare_run_dir returned, called first) loads the checkpoint in ``out``."""
        self.cfg, self.out, self.quiet = cfg, Path(out), quiet
        self.run_dir = RunDir(self.out)
        self.label = run_label(cfg)
        self.pools = pools
        self.rl_pool = self.pools["train"][:cfg.rl_pool_size()]    # train_fraction of the pool (Exp 2)
        self.cursor = 0           # prompt_sampling=epochs: prompts drawn so far from the epoch stream
        self.model, self.sft_info = model, sft_info
        self.model.eval()       # no dropout: rollouts, anchor and updates must see one and the same policy
        self.vocab = self.model.vocab
        self.width = prompt_width(self.vocab, *self.pools.values())
        if cfg.compile:
            self.model.compile_forward()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.peak_flops = peak_flops(cfg.device, cfg.peak_tflops)
        self.spec = get(cfg.objective)
        self.ref = copy.deepcopy(self.model).eval() if self.spec.needs_reference else None
        self.twin = get(self.spec.twin) if cfg.approx_grad and self.spec.twin else None
        self.obj_cfg = self.spec.make_config(**cfg.objective_config)
        self.opt = torch.optim.AdamW(param_groups(self.model, cfg.weight_decay), lr=cfg.lr,
                                     fused=True)     # one kernel per step (CPU and CUDA)
        self.gen = torch.Generator().manual_seed(cfg.seed)       # prompts; on the CPU also the sampling
        self.sample_gen = self.gen if cfg.device == "cpu" else torch.Generator(cfg.device).manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.step = self.saved_step = 0       # saved_step: the step of the checkpoint on disk
        if resumable:
            self._resume()
        else:
            self.run_dir.start(run_record(cfg, self.sft_info, provenance()))

    def _resume(self) -> None:
        """Load the checkpoint; a --steps other than the recorded one (and not below the steps done) becomes the
        run's length in config.json; one line says what the resume will do."""
        state = self._load()
        self.saved_step, steps = self.step, self.cfg.steps
        before = self.run_dir.set_steps(steps, state) if steps >= self.step else None
        changed = f"; {CONFIG}'s steps {before} -> {steps}" if before is not None else ""
        if self.step > steps:
            what = (f"{self.out} already has {self.step} steps, more than the {steps} asked for (a run is never "
                    "shortened): nothing to train; its files are unchanged")
        elif self.step == steps:
            what = (f"{self.out} already finished ({steps}/{steps} steps): nothing to train"
                    + (changed or "; its files are unchanged"))
        else:
            what = f"resumed {self.out} at step {self.step}/{steps} (its last checkpoint){changed}"
        note(f"{self.label} {what}", self.quiet)

    # ------------------------------------------------------------------ checkpoints
    def _save(self) -> None:
        """checkpoint.pt (atomic, loadable with weights_only): weights, optimizer, RNG streams, and the checksums
        of the files saved so far, which a resume verifies (run_dir.verified_checkpoint)."""
        self.run_dir.save_checkpoint({
            "model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
            "gen": self.gen.get_state(), "sample_gen": self.sample_gen.get_state(),
            "torch_rng": torch.get_rng_state(), "cursor": self.cursor})

    def _load(self) -> dict:
        """Restore the verified checkpoint (its state returned); metrics rows written after it are cut (the steps
        run again)."""
        path = self.run_dir.checkpoint
        state = self.run_dir.restore()
        load_weights(self.model, state["model"], path)
        load_weights(self.opt, state["opt"], path)
        self.step, self.cursor = state["step"], state["cursor"]
        self.gen.set_state(state["gen"])
        self.sample_gen.set_state(state["sample_gen"])
        torch.set_rng_state(state["torch_rng"])
        return state

    # ------------------------------------------------------------------ one step
    def _anchor_logprobs(self, prompts, tokens, skip: int):
        """[B, N] pi_old log-probs of rows ``skip:`` (a multiple of the group size; rows before it are
        left for the caller to fill); ``prompts`` holds one row per group."""
        out = torch.empty(tokens.shape, dtype=torch.float32, device=tokens.device)
        g = self.cfg.group_size
        if skip < len(tokens):
            with torch.no_grad(), autocast(self.cfg):
                out[skip:] = response_logprobs(self.model, prompts[skip // g:], tokens[skip:], repeats=g,
                                               temperature=self.cfg.temperature)[0]
        return out

    def _rollout(self, n: int | None = None):
        """A Rollout of ``n`` prompts (default prompts_per_step) drawn from the RL pool."""
        n = self.cfg.prompts_per_step if n is None else n
        drawn, self.cursor = draw(self.cfg, len(self.rl_pool), self.gen, self.cursor, n)
        return rollout(self.model, self.vocab, [self.rl_pool[i] for i in drawn], self.width, self.cfg,
                       self.sample_gen)

    def _logged_start(self, rewards, per_mb: int) -> int | None:
        """Start of the last mini-batch that trains, whose update the step logs (a pairwise objective skips a
        mini-batch without an informative group, as rollout_batch does); None when none trains."""
        starts = range(0, len(rewards), per_mb)
        if not self.spec.pairwise:
            return starts[-1]
        group = torch.arange(per_mb, device=rewards.device) // self.cfg.group_size
        live = [s for s in starts if informative_groups(rewards[s:s + per_mb], group).any()]
        return live[-1] if live else None

    def _update(self, prompts, tokens, rewards):
        """PPO epochs x mini-batches of registry-loss updates against the frozen anchor, each one
        update.policy_update (forward, backward, clip, step); the diagnostics are taken once, on the step's
        logged (last training) update.

        Returns (metrics of the logged update, anchor log-probs [B, N], whether any update was applied)."""
        cfg, model = self.cfg, self.model
        params = [p for p in model.parameters() if p.requires_grad]
        per_mb = cfg.prompts_per_step // cfg.minibatches * cfg.group_size
        logp_old = self._anchor_logprobs(prompts, tokens, per_mb)
        anchor_pending = True     # the first mini-batch's anchor log-probs come from its first training forward
        logged = (cfg.ppo_epochs - 1, self._logged_start(rewards, per_mb))
        metrics: dict = {}
        updated = False
        for epoch in range(cfg.ppo_epochs):
            for start in range(0, len(tokens), per_mb):
                sl = slice(start, start + per_mb)
                groups = prompts[start // cfg.group_size:(start + per_mb) // cfg.group_size]
                with autocast(self.cfg):
                    batch = rollout_batch(model, groups, tokens[sl], None if anchor_pending else logp_old[sl],
                                          rewards[sl], cfg, self.ref)
                if anchor_pending:
                    logp_old[sl] = batch.logp_old if batch is not None else self._anchor_logprobs(
                        groups, tokens[sl], 0)
                    anchor_pending = False
                if batch is None:
                    continue
                log = (epoch, start) == logged
                done = policy_update(self.spec, self.obj_cfg, batch, self.opt, params, cfg.grad_clip, log=log,
                                     split=cfg.grad_split, twin=self.twin)
                updated |= done.stepped
                if log:
                    metrics = done.metrics
        return metrics, logp_old, updated

    def _trust_region_metrics(self, prompts, tokens, logp_old, rewards) -> dict:
        """record.trust_region of the updated policy against the frozen anchor (one extra forward): the
        `after` keys."""
        cfg = self.cfg
        with torch.no_grad(), autocast(self.cfg):
            post = rollout_batch(self.model, prompts, tokens, logp_old, rewards, cfg, self.ref, with_entropy=False)
        if post is None:
            return {}
        return trust_region(post.with_(logp=post.logp.float()), cfg.objective, self.obj_cfg)

    def rl_step(self) -> dict:
        """One RL step: rollout, the updates, the row (record.build_row) without `step` and the evaluation."""
        cfg = self.cfg
        t0 = clock(cfg.device)
        self.opt.zero_grad(set_to_none=True)   # the last step's gradients are not carried through this rollout
        batch, first, sampling = collect(cfg, self._rollout, self.vocab.pad_id)
        prompts, tokens, rewards = batch.prompts, batch.tokens, batch.rewards
        t_gen = clock(cfg.device) - t0
        metrics, logp_old, updated = self._update(prompts, tokens, rewards)
        t_train = clock(cfg.device) - t0 - t_gen
        after = self._trust_region_metrics(prompts, tokens, logp_old, rewards) if cfg.trust_region_metrics else {}
        mask = response_mask(tokens, self.vocab)
        group = torch.arange(len(tokens), device=tokens.device) // cfg.group_size
        adv = advantages(PolicyBatch(logp=logp_old, logp_old=logp_old, mask=mask, group=group, rewards=rewards),
                         "centered")
        n_tokens = float(mask.sum())
        t_step = clock(cfg.device) - t0
        flops = rl_step_flops(self.n_params, prompts.numel() + tokens.numel(), cfg.ppo_epochs)
        times = {"time/generate_s": t_gen, "time/train_s": t_train, "time/step_s": t_step,
                 "throughput/tokens_per_s": n_tokens / t_step, "throughput/model_tflops": flops / t_step / 1e12}
        if self.peak_flops is not None:
            times["throughput/mfu"] = flops / t_step / self.peak_flops
        return build_row(update=with_efficiency(metrics, adv), after=after,
                         rollout={**rollout_record(first.rewards, first.group, first.correct), **sampling,
                                  "completions/mean_length": n_tokens / len(tokens)},
                         count={"updated": float(updated)}, time=times)

    # ------------------------------------------------------------------ loop
    def evaluate(self) -> dict:
        v = self.cfg.verifier
        return {"val/accuracy": accuracy(self.model, self.pools["val"], self.width, self.cfg.max_new, verifier=v),
                "val/ood_accuracy": accuracy(self.model, self.pools["ood"], self.width, self.cfg.max_new, verifier=v)}

    @torch.no_grad()
    def pre_rl_evaluation(self) -> dict:
        """The policy before any RL update: evaluate() plus greedy and sampled (group_size samples at the RL
        temperature/top_p, from a generator of its own so the RL streams are untouched) accuracy on the first
        val_size problems of the RL pool."""
        cfg = self.cfg
        items = self.rl_pool[:cfg.val_size]
        prompts = self.vocab.prompts([p.prompt for p in items], self.width).to(cfg.device)
        gen = torch.Generator(cfg.device).manual_seed(cfg.seed + 7919)
        with autocast(self.cfg):
            out = generate(self.model, prompts, cfg.max_new, cfg.temperature, cfg.top_p, gen, repeats=cfg.group_size)
        hits = [reward(self.vocab.decode(t), items[i // cfg.group_size].answer, verifier=cfg.verifier)[1]
                for i, t in enumerate(out.tolist())]
        return {**self.evaluate(), "train/greedy_accuracy": accuracy(self.model, items, self.width, cfg.max_new,
                                                                     verifier=cfg.verifier),
                "train/sampled_accuracy": sum(hits) / len(hits), "problems": len(items)}

    def _write_pre_rl(self) -> None:
        """pre_rl.json next to the metrics, once, before the first update (a resumed run already has it)."""
        if self.step == 0 and not self.run_dir.pre_rl.exists():
            n = len(self.rl_pool[:self.cfg.val_size])
            greedy = len(self.pools["val"]) + len(self.pools["ood"]) + n
            note(f"{self.label} evaluating the policy before RL ({greedy} greedy and {n * self.cfg.group_size} "
                 "sampled answers; minutes for a pretrained model on a CPU)", self.quiet)
            self.run_dir.write_pre_rl(self.pre_rl_evaluation())

    def run(self) -> Path:
        """Train to cfg.steps; a checkpoint every cfg.checkpoint_every steps; Ctrl-C raises Interrupted naming
        the step reached and the checkpoint a resume restarts from; ends with a one-line summary."""
        try:
            self._loop()
        except KeyboardInterrupt:
            if sys.stderr.isatty():
                note("", self.quiet)                 # end the \r progress line
            restart = (f"a resume restarts from its checkpoint at step {self.saved_step}" if self.saved_step else
                       f"no checkpoint yet (one every {self.cfg.checkpoint_every} steps), so a resume restarts it "
                       "from step 0")
            raise Interrupted(f"step {self.step}/{self.cfg.steps} of {self.cfg.objective} seed {self.cfg.seed} "
                              f"({self.out})", restart) from None
        self._check_it_trained()
        self._summary()
        return self.run_dir.metrics

    def _check_it_trained(self) -> None:
        """A run whose every step skipped its update (the gradient was never finite) did nothing: an error."""
        rows = read_jsonl(self.run_dir.metrics)
        if rows and all(not r.get("updated") and "grad/norm" in r and r["grad/norm"] is None for r in rows):
            raise ValueError(f"{self.label} no update was applied in {len(rows)} steps: the loss gradient was not "
                             f"finite at any step (objective settings {self.cfg.objective_config or 'default'}); "
                             f"the run in {self.out} did nothing")

    def _diverged(self, exc: Exception) -> Exception:
        """The error to raise when a step fails: one naming lr and weight_decay once the weights are no longer
        finite (the cause of non-finite log-probs), else ``exc`` itself."""
        if all(torch.isfinite(p).all() for p in self.model.parameters()):
            return exc
        return ValueError(f"{self.label} step {self.step}: the policy's weights are no longer finite (lr "
                          f"{self.cfg.lr:g}, weight_decay {self.cfg.weight_decay:g}): lower lr or weight_decay"
                          + (f"; the checkpoint of step {self.saved_step} is unaffected" if self.saved_step else ""))

    def _summary(self) -> None:
        """One line: final reward (mean of the last 10 steps), last val and OOD accuracy, where the logs are."""
        rows = read_jsonl(self.run_dir.metrics)
        s, tail = run_summary(rows), min(SUMMARY_KEYS["final_reward"][1], len(rows))
        done = f"{self.step}/{self.cfg.steps}" if self.step == self.cfg.steps else f"{self.step}"
        note(f"{self.label} done, {done} steps: final reward {s['final_reward']:.3f} (last {tail} "
             f"steps), val accuracy {s['val_accuracy']:.3f}, OOD accuracy {s['ood_accuracy']:.3f} (last evaluation); "
             f"logs: {self.run_dir.metrics}", self.quiet)

    def _loop(self) -> None:
        cfg = self.cfg
        show = not self.quiet
        self._write_pre_rl()
        start, first = clock(cfg.device), self.step
        with open(self.run_dir.metrics, "a") as log:
            while self.step < cfg.steps:
                try:
                    m = {"step": self.step, **self.rl_step()}     # step: the generation round (record.WHEN)
                except (ValueError, RuntimeError) as exc:     # non-finite log-probs or sampling probabilities
                    raise self._diverged(exc) from None
                if self.step % cfg.val_every == 0 or self.step == cfg.steps - 1:
                    m.update(build_row(eval=self.evaluate()))
                log.write(json_line(m))
                log.flush()
                self.step += 1
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self._save()
                    self.saved_step = self.step
                if show and (self.step % 10 == 0 or self.step == cfg.steps):
                    end = "\r" if sys.stderr.isatty() and self.step < cfg.steps else "\n"
                    took = clock(cfg.device) - start
                    left = took / (self.step - first) * (cfg.steps - self.step)
                    note(f"{self.label} step {self.step}/{cfg.steps} reward {m['reward/mean']:.3f} acc "
                         f"{m['accuracy']:.3f} grad {m.get('grad/norm', float('nan')):.3f} ({took:.0f} s, about "
                         f"{left:.0f} s left)", end=end)
