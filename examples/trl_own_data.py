"""RegistryGRPOTrainer (TRL's GRPOTrainer with a registry objective) on your own data and reward function.

    python examples/trl_own_data.py [OUT_DIR]

A tiny random-weight model stands in for yours (opo_theory.lm.models.tiny_hf; nothing is downloaded): it has learned
nothing, so its rewards come from the partial credit only (expected). With a real model pass its directory as
``model=``.
Needs the [trl] extra. Writes OUT_DIR/metrics.jsonl (the toolkit's diagnostics per optimizer step).
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import datasets
from transformers import AutoTokenizer, PrinterCallback
from trl import GRPOConfig

from opo_theory.integrations.trl import RegistryGRPOTrainer
from opo_theory.lm.models.tiny_hf import build_tiny_model

HERE = Path(__file__).resolve().parent
warnings.filterwarnings("ignore", category=FutureWarning)     # transformers' deprecation notices inside TRL


def my_reward(completions, answer, **_):
    """1 for the exact answer, else 0.5 x the share of the answer's characters the text contains (``answer`` is a
    column of the dataset; TRL passes every column by name)."""
    return [1.0 if c.strip() == a else 0.5 * len(set(a) & set(c)) / len(set(a))
            for c, a in zip(completions, answer, strict=True)]


out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
rows = [json.loads(line) for line in (HERE / "data" / "sums.jsonl").read_text().splitlines()]
model_dir = build_tiny_model(out / "model", layers=1, width=32, heads=2)
trainer = RegistryGRPOTrainer(
    model=str(model_dir), reward_funcs=my_reward, train_dataset=datasets.Dataset.from_list(rows),
    processing_class=AutoTokenizer.from_pretrained(model_dir),
    args=GRPOConfig(output_dir=str(out / "trl"), use_cpu=True, per_device_train_batch_size=8, num_generations=4,
                    num_iterations=2, max_completion_length=4, max_steps=2, learning_rate=1e-4, logging_steps=1,
                    report_to=[], save_strategy="no", disable_tqdm=True),
    objective="opo", objective_config={"mu": 0.5}, metrics_dir=out)
trainer.remove_callback(PrinterCallback)             # TRL prints each step's whole log dict
trainer.train()
rewards = [row["reward/mean"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
print(f"mean reward per optimizer step: {', '.join(f'{r:.3f}' for r in rewards)}; wrote {out / 'metrics.jsonl'}")
