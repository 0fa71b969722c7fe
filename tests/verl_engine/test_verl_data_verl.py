"""The exported task files through verl's own reader (RLHFDataset) and reward loader (custom_reward_function)."""

import pytest
from omegaconf import OmegaConf
from verl.trainer.ppo.reward import get_custom_reward_fn
from verl.utils.dataset.rl_dataset import RLHFDataset

from opo_theory.integrations import verl_data
from opo_theory.lm.models.tiny_hf import train_tokenizer

CHAT = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant: "


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return verl_data.export(tmp_path_factory.mktemp("verl-data"), level=2, train=6, val=2, verifier="lenient")


def test_rlhf_dataset_reads_the_exported_rows(files, tmp_path):
    tok = train_tokenizer()
    tok.chat_template = CHAT           # the tiny tokenizer has none; verl filters prompts by their templated length
    cfg = OmegaConf.create({"cache_dir": str(tmp_path), "max_prompt_length": 512, "filter_overlong_prompts": True,
                            "filter_overlong_prompts_workers": 1})
    ds = RLHFDataset([str(files["train"])], tok, cfg)
    assert len(ds) == 6
    for i in range(len(ds)):
        row = ds[i]
        want = verl_data.rows(2, "train", 6, verifier="lenient")[i]
        assert row["raw_prompt"] == want["prompt"]
        assert row["data_source"] == verl_data.DATA_SOURCE and row["index"] == i
        assert row["reward_model"]["ground_truth"] == want["reward_model"]["ground_truth"]


def test_custom_reward_function_loads_compute_score(files):
    config = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://opo_theory.integrations.verl_data", "name": "compute_score", "reward_kwargs": {}}}})
    score = get_custom_reward_fn(config)
    import pyarrow.parquet as pq

    for row in pq.read_table(files["val"]).to_pylist():
        truth = row["reward_model"]["ground_truth"]
        # the keywords verl's reward managers pass (workers/reward_manager/naive.py)
        assert score(data_source=row["data_source"], solution_str=f"It is {truth}.", ground_truth=truth,
                     extra_info={**row["extra_info"], "num_turns": 2}) == 1.0
        assert score(data_source=row["data_source"], solution_str="no idea", ground_truth=truth,
                     extra_info=row["extra_info"]) == 0.0
