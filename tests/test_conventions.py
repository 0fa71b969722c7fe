"""Field conventions the registry exposes as named options, and what each objective says it needs."""

import math

import pytest
import torch

from opo_theory import objectives as O
from opo_theory.objectives.clipped import kl_penalty
from opo_theory.objectives.opo import escort_weights
from opo_theory.objectives.reduce import seq_logratio


def group_batch(seed=0, B=8, T=5, G=4, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2 - 0.1
    logp = (logp_old + torch.randn(B, T, generator=g, dtype=torch.float64) * scale).requires_grad_()
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[1, 3:] = 0
    mask[6, 1:] = 0
    return O.PolicyBatch(logp=logp, logp_old=logp_old, mask=mask, group=torch.arange(B) // G,
                         rewards=torch.randn(B, generator=g, dtype=torch.float64))


def loss_and_grad(name, batch, **cfg):
    loss, _ = O.get(name)(batch, O.get(name).make_config(**cfg))
    (grad,) = torch.autograd.grad(loss, batch.logp)
    return loss.detach(), grad


def test_code_geometry_uses_the_objectives_own_sequence_log_ratio():
    # p = softmax_G(clamp(Delta/tau, ±10)) must follow seq_logratio and delta_clamp: recompute it by hand
    b = group_batch()
    for mode, clamp in (("sum", None), ("mean", 5.0), ("sum", 0.3)):
        cfg = O.get("opo").make_config(geometry="code", alpha=0.75, seq_logratio=mode, delta_clamp=clamp)
        w = escort_weights(b, cfg)
        adv = b.rewards - b.rewards.view(2, 4).mean(1).repeat_interleave(4)
        q = torch.softmax((adv / cfg.beta_r).view(2, 4), 1)
        delta = seq_logratio(b, mode, clamp).detach()
        p = torch.softmax((delta / cfg.tau).clamp(-10, 10).view(2, 4), 1)
        expected = q**0.75 * p**0.25
        expected = (expected / expected.sum(1, keepdim=True)).flatten()
        assert torch.allclose(w, expected, atol=1e-12), (mode, clamp)
    # the settings change the weights (the old code fixed them to the clamped mean)
    w_sum = escort_weights(b, O.get("opo").make_config(geometry="code", alpha=0.75))
    w_rel = escort_weights(b, O.get("opo").make_config(geometry="code", alpha=0.75, seq_logratio="mean",
                                                       delta_clamp=5.0))
    assert (w_sum - w_rel).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["opo", "opo-exact", "gopo"])
def test_released_normalisation_is_group_size_times_the_mean_form_at_mu_over_g(name):
    # released: drive summed within each group (averaged over groups), penalty averaged over responses;
    # with G = 4: released(mu) = 4 x mean(mu / 4) in value and gradient
    b = group_batch(scale=0.3)
    mu = 0.8
    rel_loss, rel_grad = loss_and_grad(name, b, mu=mu, normalization="released")
    mean_loss, mean_grad = loss_and_grad(name, b, mu=mu / 4, normalization="mean")
    assert torch.allclose(rel_loss, 4 * mean_loss, atol=1e-12)
    assert torch.allclose(rel_grad, 4 * mean_grad, atol=1e-12)
    # and differs from the default normalisation at the same mu
    assert (loss_and_grad(name, b, mu=mu)[1] * 4 - rel_grad).abs().max() > 1e-6


def test_normalisation_name_is_checked():
    with pytest.raises(ValueError, match="normalization"):
        O.get("opo").make_config(normalization="sum")


def test_abs_kl_estimator_is_verls_absolute_log_ratio():
    x = torch.tensor([-2.0, -0.1, 0.0, 0.3, 4.0], dtype=torch.float64)
    assert torch.equal(kl_penalty(x, "abs"), x.abs())
    b = group_batch()
    b = b.with_(logp_ref=b.logp_old - 0.2)
    loss_abs = O.get("ppo-kl")(b, O.get("ppo-kl").make_config(kl="abs", beta=0.5))[1]["loss/reg"]
    pi_minus_ref = (b.logp - b.logp_ref).detach()
    tok = 0.5 * pi_minus_ref.abs() * b.mask
    # seq-mean-token-mean aggregation: mean over responses of each response's token mean
    expected = (tok.sum(1) / b.mask.sum(1)).mean()
    assert math.isclose(float(loss_abs.detach()), float(expected), rel_tol=1e-12)


def test_objectives_declare_what_they_need():
    flags = {n: (O.get(n).pairwise, O.get(n).needs_reference, O.get(n).twin, O.get(n).needs_whole_groups)
             for n in O.available()}
    assert flags["opo"] == (False, False, "opo-exact", True)
    assert flags["opo-exact"] == (False, False, "opo", True)
    assert flags["ppo-kl"] == (False, True, None, True)
    for n in ("dpo", "ipo", "chipo"):
        assert flags[n][0] and not flags[n][1]
    assert flags["sft"] == (False, False, None, False)
    # a twin is itself registered and names its twin back
    for n, (_, _, twin, _) in flags.items():
        if twin is not None:
            assert O.get(twin).twin == n
    # ppo-kl without the reference it declares is refused with a clear error
    with pytest.raises(ValueError, match="logp_ref"):
        O.get("ppo-kl")(group_batch())


@pytest.mark.parametrize("name", ["opo", "opo-exact", "gopo", "gopo-bounded"])
@pytest.mark.parametrize("geometry", ["paper", "code", "wgopo"])
def test_precomputed_drive_lets_micro_batches_split_groups(name, geometry):
    # the drive computed on whole groups and carried by shuffled micro-batches gives the full-batch
    # loss and gradient once the micro-batch losses (with the global normalizer) are summed
    from opo_theory.objectives.opo import whole_group_drive
    b = group_batch(scale=0.3)
    extra = {} if name == "gopo-bounded" else {"geometry": geometry}
    if geometry != "paper" and name == "gopo-bounded":
        pytest.skip("gopo-bounded has the gopo geometry")
    spec = O.get(name)
    cfg = spec.make_config(**extra)
    full_loss, full_grad = loss_and_grad(name, b, **extra)
    d = whole_group_drive(name, b, cfg)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    total = 0.0
    for part in (order[:3], order[3:]):
        sub = b.select(part).with_(drive=d[part], group=torch.arange(len(part)), normalizer=8.0)
        total = total + spec(sub, spec.make_config(**extra))[0]
    (grad,) = torch.autograd.grad(total, b.logp)
    assert torch.allclose(total.detach(), full_loss, atol=1e-12)
    assert torch.allclose(grad, full_grad, atol=1e-12)
    # without the drive a split group is centred on its fragment: the loss changes
    frag = b.select(order[:3]).with_(group=torch.zeros(3, dtype=torch.long))
    assert not torch.allclose(spec(frag, cfg)[0], spec(frag.with_(drive=d[order[:3]]), cfg)[0])


def package_imports(root) -> dict[str, set[str]]:
    """{module: the opo_theory modules it imports}, every import counted (those inside functions too), read with
    ast from the source of the opo_theory package under ``root`` (a name imported from a package counts as an import
    of its submodule when it is one)."""
    import ast

    files = {}
    for path in (root / "opo_theory").rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else [])) if node.level else node.module
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
        for target in targets:
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph.setdefault(name, set()).add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each an import cycle."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                cycles.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_import_cycles_are_found():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_no_import_cycle_among_opo_theory_modules():
    from pathlib import Path

    graph = package_imports(Path(__file__).resolve().parents[1])
    assert {"opo_theory.lm.training.run_dir", "opo_theory.lm.training.checkpoint"} <= graph["opo_theory.lm.training.trainer"]   # imports are read
    assert import_cycles(graph) == []
