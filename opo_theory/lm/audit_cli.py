"""`opo-theory audit`: the parser (light) and the run (torch and the audit, imported inside)."""

from __future__ import annotations

from opo_theory.lm.cli import (
    add_settings_options,
    check_device,
    out_of_memory_is_one_line,
    settings_or_listing,
    split_names,
)

DEFAULT_AUDIT = "opo,opo-code,opo-exact,gopo,grpo,dapo,gspo,dr-grpo,ppo-kl"


def configure(name: str, p) -> None:
    if name != "audit":
        raise ValueError(f"opo_theory.lm.audit_cli has no command {name!r}")
    p.add_argument("--policy", default="sft", help="sft (the cached SFT warm-up, default) or confident (trained on "
                                                   "until train accuracy or answer-token probability is high; cached)")
    p.add_argument("--checkpoint", metavar="RUN_DIR", help="audit a run's checkpoint (its config.json settings)")
    p.add_argument("--preset", default="cpu-tiny", help="named preset the settings start from (default cpu-tiny)")
    p.add_argument("--model", help="'char-gpt' (default), 'hf:<local dir>', 'smollm2-135m' or 'gguf:<file>'")
    p.add_argument("--objectives", default=DEFAULT_AUDIT, help=f"comma list (default {DEFAULT_AUDIT}; opo-code = "
                                                               "opo in the released code's geometry; also the field's "
                                                               "losses of TRL and verl: cispo, sapo, gmpo, ... as "
                                                               "opo-theory objectives lists them)")
    p.add_argument("--seeds", type=int, default=8, help="rollout seeds 0..N-1 (default 8; at least 3 for intervals)")
    p.add_argument("--updates", type=int, default=8, help="updates K from the anchor per objective (default 8)")
    p.add_argument("--minibatches", type=int, default=1, help="update k trains on mini-batch (k-1) mod M of the "
                   "rollout's groups, as the trainer's ppo_epochs x minibatches updates do (default 1: every update "
                   "on the whole rollout); e.g. --updates 4 --minibatches 2 on a cpu-tiny --checkpoint")
    p.add_argument("--out", help="output directory (audit.json, partial/); required")
    p.add_argument("--resume", action="store_true", help="continue an interrupted audit in --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    add_settings_options(p)
    p.set_defaults(func=run)


@out_of_memory_is_one_line
def run(args) -> int:
    settings = settings_or_listing(args, None, "--out")
    if settings is None:
        return 0
    from opo_theory.lm.experiments.audit import audit_config, run_audit
    from opo_theory.lm.experiments.compare import check_outputs

    cfg = audit_config(args.preset, settings, args.model, args.checkpoint, args.policy)
    check_device(cfg)
    check_outputs(args.out, cfg)
    path = run_audit(cfg, args.out, policy=args.policy, checkpoint=args.checkpoint,
                     objectives=split_names(args.objectives), seeds=args.seeds, updates=args.updates,
                     minibatches=args.minibatches,                     resume=args.resume, quiet=args.quiet)
    print(f"wrote {path}")
    import json

    print(verdict_table(json.loads(path.read_text())))
    return 0


def verdict_table(record: dict) -> str:
    """What an audit.json says, as text: the policy and its rollout accuracy, the mechanism verdict and one row
    per condition (OPO variant x confident p_old bin x advantage sign: its outcome and, against each baseline,
    the paired difference of log logit-space sizes with its 95% interval and Holm-adjusted p), the clip verdict."""
    acc, policy = record["rollout_accuracy"], record["policy"]
    band = "" if acc["low"] is None else f" [{acc['low']:.3g}, {acc['high']:.3g}]"     # one seed: no interval
    lines = [f"policy {policy.get('policy', '?')} (SFT val accuracy {policy.get('sft_val_accuracy', '?')}); rollout "
             f"accuracy {acc['mean']:.3g}{band} over {acc['n']} seeds"]
    verdict = record.get("verdict")
    if verdict is None:
        return "\n".join(lines + ["no mechanism verdict: it needs an OPO variant and grpo or dapo in --objectives"])
    lines.append(f"mechanism verdict: {verdict['overall']} (OPO's logit-space gradient higher than the baselines' "
                 "on confident tokens, p_old >= 0.9)")
    conditions = verdict["conditions"]
    bases = list(next(iter(conditions.values()))["pairs"]) if conditions else []
    rows = [["condition", "outcome", *(f"vs {b}: diff of log sizes [95%], p_holm" for b in bases)]]
    def num(x, spec: str) -> str:                  # None: the test could not be computed (e.g. too few seeds)
        return "n/a" if x is None else f"{x:{spec}}"
    for name, c in conditions.items():
        rows.append([name, c["outcome"], *(f"{num(t['estimate'], '+.3g')} [{num(t['low'], '+.3g')}, "
                                           f"{num(t['high'], '+.3g')}], {num(t['p_holm'], '.2g')}"
                                           for t in (c["pairs"][b] for b in bases))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(f"{cell:{w}}" for cell, w in zip(r, widths)).rstrip() for r in rows]
    clip = verdict["clip_zero"]
    counts: dict[str, int] = {}
    for c in clip["conditions"].values():
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    lines.append(f"clip-zeroed token share, baselines minus OPO: {clip['verdict']} "
                 f"({', '.join(f'{n} {o}' for o, n in counts.items())} of {len(clip['conditions'])} conditions)")
    lines.append(f"rule: {verdict['rule']}")
    return "\n".join(lines)
