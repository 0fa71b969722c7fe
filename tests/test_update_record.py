"""One update record (opo_theory.lm.training.record, opo_theory.lm.training.update): the trainer's and the TRL adapter's rows agree
on every key they share, on one identical micro-batch; a key keeps one phase; docs/metrics.md lists every phase."""

from __future__ import annotations

import copy
import math
import os
import sys
import warnings
from pathlib import Path

import pytest
import torch

from opo_theory.io import REPO_ROOT
from opo_theory.lm.training.record import KEYS, WHEN, build_row, phase_of

# the keys both rows must hold on an OPO micro-batch with the diagnostics on (the comparison is not vacuous)
SHARED = ("loss/total", "loss/drive", "loss/reg", "drive/abs_mean", "grad/norm", "grad/norm_drive", "grad/norm_reg",
          "grad/cos_drive_reg", "approx/grad_cos", "grad/response_efficiency", "conf/lt0.5/share",
          "conf/ge0.999/grad_abs", "conf/total/grad_abs", "conf/total/clip_zero", "entropy/mean", "reward/mean",
          "reward/frac_zero_std", "accuracy")


def test_a_key_is_given_under_its_own_phase_only():
    assert phase_of("delta/m2") == "after" and phase_of("pre/delta/m2") == "pre"
    assert phase_of("after_update/delta/m2") == "after_update" and phase_of("conf/lt0.5/share") == "update"
    assert build_row(update={"loss/total": 1.0, "cispo/x": 2.0}, after={"delta/m2": 0.5}) == {
        "loss/total": 1.0, "cispo/x": 2.0, "delta/m2": 0.5}
    with pytest.raises(ValueError, match="'delta/m2' given as 'pre' but measured at 'after'"):
        build_row(pre={"delta/m2": 0.5})
    with pytest.raises(ValueError, match="measured at None"):
        build_row(rollout={"cispo/x": 1.0})                 # an unknown key is an objective's: update only
    with pytest.raises(ValueError, match="not a phase"):
        build_row(later={"x": 1.0})


def test_metrics_doc_lists_every_phase_and_every_key_pattern():
    text = (REPO_ROOT / "docs" / "metrics.md").read_text()
    section = text[text.index("## When each key is measured"):]
    for phase in WHEN:
        assert f"`{phase}`" in section, phase
    for pattern, _ in KEYS:
        shown = pattern.removeprefix("pre/").removeprefix("after_update/")
        assert f"`{shown}`" in section or f"`{pattern}`" in section, pattern


# ---------------------------------------------------------------- the trainer's row and TRL's on one batch
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("trl", reason="trl is not installed: pip install -e '.[trl]'")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from opo_theory.lm.models.tiny_hf import build_tiny_model
    warnings.filterwarnings("ignore", category=FutureWarning)
    return build_tiny_model(tmp_path_factory.mktemp("rec") / "tiny", "llama", layers=1, width=32, heads=2)


def test_trainer_and_trl_rows_agree_on_every_shared_key(model_dir, tmp_path):
    """One OPO micro-batch, its anchor moved off the policy (Delta != 0): the TRL adapter's row (its loss call,
    backward and step_metrics) and the trainer's (update.policy_update, logged, and the trainer's row sections)
    agree on every shared key; the trainer's `after` keys never appear in TRL's row (TRL's are `pre/`)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import trl_worker

    from opo_theory.lm.training.record import rollout_record, with_efficiency
    from opo_theory.lm.training.update import policy_update
    from opo_theory.objectives import get
    from opo_theory.objectives.advantages import advantages

    tr = trl_worker.make_trainer(model_dir, tmp_path, 16, 1, objective="opo", iterations=2)
    model = tr.model.train()
    twin_model = copy.deepcopy(model)
    tr.current_gradient_accumulation_steps = 1
    rows = [{"prompt": p, "answer": a} for p, a in zip(tr.train_dataset["prompt"][:4], tr.train_dataset["answer"][:4],
                                                       strict=True) for _ in range(trl_worker.GROUP)]
    inputs = tr._generate_and_score_completions(rows)
    with torch.no_grad():
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        logp = tr._get_per_token_logps_and_entropies(model, ids, att, inputs["completion_ids"].size(1))[0]
    gen = torch.Generator().manual_seed(0)
    inputs["old_per_token_logps"] = logp + 0.3 * torch.randn(logp.shape, generator=gen, dtype=logp.dtype)

    model.zero_grad(set_to_none=True)
    tr._compute_loss(model, inputs).backward()
    window, tr._window = tr._window, type(tr._window)()
    trl_row = tr.step_metrics(model, window)

    params = [p for p in twin_model.parameters() if p.requires_grad]
    batch = tr.policy_batch(twin_model, inputs)
    opt = torch.optim.AdamW(params, lr=1e-3)
    done = policy_update(tr.spec, tr.obj_cfg, batch, opt, params, 1.0, log=True, split=True, twin=get(tr.spec.twin))
    trainer_row = build_row(update=with_efficiency(done.metrics, advantages(batch, "centered")),
                            rollout=rollout_record(batch.rewards, batch.group, correct=inputs["correct"]))

    shared = sorted(set(trainer_row) & set(trl_row))
    assert set(SHARED) <= set(shared), sorted(set(SHARED) - set(shared))
    for k in shared:
        a, b = trainer_row[k], trl_row[k]
        if isinstance(a, float) and math.isnan(a):
            assert math.isnan(b), (k, a, b)
        else:
            assert a == pytest.approx(b, rel=1e-6, abs=1e-9), (k, a, b)
    assert trl_row["pre/delta/m2"] > 0                     # the anchor differs from the policy
    assert not [k for k in trl_row if phase_of(k) == "after"]
