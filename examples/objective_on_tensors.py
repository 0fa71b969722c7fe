"""The objective registry on your own tensors: OPO's loss on 2 prompts x 4 responses x 5 tokens, then backward.

    python examples/objective_on_tensors.py
"""

import torch

from opo_theory.objectives import PolicyBatch, get

torch.manual_seed(0)
groups, group_size, tokens = 2, 4, 5
rows = groups * group_size
logits = torch.randn(rows, tokens, requires_grad=True)               # stands in for your policy's output
logp = torch.nn.functional.logsigmoid(logits)                          # log pi_theta(o_t | q, o_<t), [B, T]
batch = PolicyBatch(
    logp=logp,
    logp_old=logp.detach() - 0.05 * torch.rand(rows, tokens),         # the frozen anchor pi_old, [B, T]
    mask=torch.ones(rows, tokens),                                     # 1 on response tokens that count
    group=torch.arange(rows) // group_size,                            # prompt index of each response
    rewards=torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),  # your reward per response
)
spec = get("opo")
loss, parts = spec(batch, spec.make_config(mu=0.5))                    # OPO with mu = 0.5, the rest default
loss.backward()
print(f"loss {loss.item():.5f}; gradient norm {logits.grad.norm().item():.5f}")
print("parts:", ", ".join(f"{k} {v.item():.4f}" for k, v in parts.items()))
