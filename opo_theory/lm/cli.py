"""`opo-theory train` and `opo-theory compare`."""

from __future__ import annotations

import functools

import torch

from opo_theory.lm.compare import check_outputs, compare, markdown
from opo_theory.lm.config import PRESETS, make_config
from opo_theory.lm.trainer import Trainer


def register(sub) -> None:
    t = sub.add_parser("train", help="SFT warm-up (cached) then RL with one registered objective")
    t.add_argument("--objective", required=True)
    t.add_argument("--preset", default="cpu-tiny", help=f"one of {', '.join(PRESETS)}")
    t.add_argument("--model", help="'char-gpt' (default) or 'hf:<local dir>' (transformers causal LM + tokenizer "
                                   "saved with save_pretrained; needs pip install -e .[hf])")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                   help="override a config field; objective.KEY=VALUE sets an objective hyperparameter")
    t.set_defaults(func=run_train)
    c = sub.add_parser("compare", help="several objectives x seeds from the same SFT policy")
    c.add_argument("--objectives", default="opo,grpo,dapo,gspo,dr-grpo")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--preset", default="cpu-tiny")
    c.add_argument("--model", help="'char-gpt' (default) or 'hf:<local dir>'")
    c.add_argument("--out", required=True)
    c.add_argument("--steps", type=int)
    c.add_argument("--resume", action="store_true")
    c.add_argument("--quiet", action="store_true")
    c.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE")
    c.set_defaults(func=run_compare)


def out_of_memory_is_one_line(run):
    """A CUDA out-of-memory error becomes one line naming the settings to lower (checkpoints stay resumable)."""
    @functools.wraps(run)
    def wrapped(args) -> int:
        try:
            return run(args)
        except torch.OutOfMemoryError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "out of memory"
            raise ValueError(f"{first} -- lower prompts_per_step, group_size or max_new (--set), or pick a smaller "
                             "--preset/--model; --resume continues from the last checkpoint") from None
    return wrapped


@out_of_memory_is_one_line
def run_train(args) -> int:
    cfg = make_config(args.objective, args.preset, args.seed, args.settings, args.steps, args.model)
    check_outputs(args.out, cfg)          # before the SFT warm-up: a bad path costs nothing and leaves nothing
    path = Trainer(cfg, args.out, resume=args.resume, quiet=args.quiet).run()
    print(f"wrote {path}")
    return 0


@out_of_memory_is_one_line
def run_compare(args) -> int:
    objectives = [o for o in args.objectives.split(",") if o]
    table = compare(objectives, args.seeds, args.preset, args.out, args.settings, args.steps,
                    args.resume, args.quiet, args.model)
    print(markdown(table))
    return 0
