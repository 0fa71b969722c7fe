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
    p.add_argument("--model", help="'char-gpt' (default) or 'hf:<local dir>'")
    p.add_argument("--objectives", default=DEFAULT_AUDIT, help=f"comma list (default {DEFAULT_AUDIT}; opo-code = "
                                                               "opo in the released code's geometry; also the field's "
                                                               "losses of TRL and verl: cispo, sapo, gmpo, ... as "
                                                               "opo-theory objectives lists them)")
    p.add_argument("--seeds", type=int, default=8, help="rollout seeds 0..N-1 (default 8; at least 3 for intervals)")
    p.add_argument("--updates", type=int, default=8, help="updates K from the anchor per objective (default 8)")
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
    from opo_theory.lm.audit import audit_config, run_audit
    from opo_theory.lm.compare import check_outputs

    cfg = audit_config(args.preset, settings, args.model, args.checkpoint, args.policy)
    check_device(cfg)
    check_outputs(args.out, cfg)
    path = run_audit(cfg, args.out, policy=args.policy, checkpoint=args.checkpoint,
                     objectives=split_names(args.objectives), seeds=args.seeds, updates=args.updates,
                     resume=args.resume, quiet=args.quiet)
    print(f"wrote {path}")
    return 0
