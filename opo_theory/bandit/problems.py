"""Toy problems: S independent K-armed bandits with a softmax policy over logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from opo_theory.validation import require_choice


@dataclass(frozen=True)
class KArmedBandit:
    """S independent K-armed bandits (one per seed/config): arm means [S, K], Bernoulli or Gaussian."""

    means: Tensor
    reward: str = "bernoulli"
    noise: float = 1.0

    @staticmethod
    def make(n: int, k: int, reward: str = "bernoulli", seed: int = 0, device="cpu") -> KArmedBandit:
        """Arm means U[0,1] (Bernoulli success rates) or N(0,1) (Gaussian means)."""
        require_choice("reward", reward, ("bernoulli", "gaussian"))
        if not (isinstance(k, int) and 2 <= k <= 100_000):
            raise ValueError(f"k (number of arms) must be an integer in [2, 100000], got {k!r}")
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n (number of bandits) must be an integer >= 1, got {n!r}")
        g = torch.Generator().manual_seed(seed)
        means = torch.rand(n, k, generator=g) if reward == "bernoulli" else torch.randn(n, k, generator=g)
        return KArmedBandit(means.to(device), reward)

    def sample_rewards(self, arms: Tensor, generator: torch.Generator) -> Tensor:
        """Rewards of pulled ``arms`` [S, G]."""
        m = torch.gather(self.means, 1, arms)
        if self.reward == "bernoulli":
            return (torch.rand(m.shape, generator=generator, device=m.device) < m).to(m.dtype)
        return m + self.noise * torch.randn(m.shape, generator=generator, device=m.device)
