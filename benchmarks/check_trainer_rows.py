"""Micro `train` runs of opo, grpo, ppo-kl and dpo: their metrics rows (time/* and throughput/* left out) and
a sha256 of the final weights, saved (--save FILE) or compared with a saved file (--compare FILE).

A refactor of the update path must leave both bitwise equal: run --save at the base revision, --compare after
(each from its own checkout's root, `python -m benchmarks.check_trainer_rows`: `python benchmarks/...` would import the installed package). A few seconds per run."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

OBJECTIVES = ("opo", "grpo", "ppo-kl", "dpo")
MICRO = ["n_layer=1", "n_embd=16", "n_head=2", "sft_max_steps=20", "pool_size=300", "val_size=20",
         "train_level=2", "ood_level=3", "sft_batch=32", "shaping=0.5", "prompts_per_step=4", "group_size=4",
         "max_new=5", "lr=0.01", "val_every=2", "threads=1"]
STEPS = 3
SKIPPED = ("time/", "throughput/")


def weights_hash(model) -> str:
    """sha256 over the state dict's names and raw bytes, in order."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def record(objective: str, sft_cache: str, root: Path) -> dict:
    """One micro run of ``objective``: its rows without the timing keys and its final weights' hash."""
    from opo_theory.io import read_jsonl
    from opo_theory.lm.training.config import make_config
    from opo_theory.lm.training.trainer import start_run

    cfg = make_config(objective, "cpu-tiny", 0, MICRO + [f"sft_cache={sft_cache}", f"steps={STEPS}"], None, None)
    trainer = start_run(cfg, root / objective, quiet=True)
    trainer.run()
    rows = [{k: v for k, v in r.items() if not k.startswith(SKIPPED)} for r in read_jsonl(root / objective /
                                                                                              "metrics.jsonl")]
    return {"rows": rows, "weights": weights_hash(trainer.model)}


def differences(before: dict, after: dict) -> list[str]:
    """Every (objective, step, key) whose value differs, and every weights hash that differs."""
    out = []
    for o in OBJECTIVES:
        a, b = before[o], after[o]
        if a["weights"] != b["weights"]:
            out.append(f"{o}: final weights differ")
        if len(a["rows"]) != len(b["rows"]):
            out.append(f"{o}: {len(a['rows'])} rows before, {len(b['rows'])} after")
        for ra, rb in zip(a["rows"], b["rows"]):
            for k in sorted(set(ra) | set(rb)):
                if ra.get(k, "<absent>") != rb.get(k, "<absent>"):
                    out.append(f"{o} step {ra.get('step')}: {k} {ra.get(k, '<absent>')} -> {rb.get(k, '<absent>')}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path)
    mode.add_argument("--compare", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = {o: record(o, str(Path(tmp) / "sft"), Path(tmp)) for o in OBJECTIVES}
    result = json.loads(json.dumps(result))          # the saved file's float round trip
    if args.save:
        args.save.write_text(json.dumps(result) + "\n")
        print(f"saved {len(OBJECTIVES)} runs to {args.save}")
        return 0
    diff = differences(json.loads(args.compare.read_text()), result)
    print("\n".join(diff) if diff else f"identical: {', '.join(OBJECTIVES)} (rows without time/throughput, weights)")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
