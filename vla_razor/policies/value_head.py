"""Critic head: an MLP on the last-layer hidden state of the token just before the first action token.

RL4VLA uses 4096 -> 512 -> 128 -> 1 on OpenVLA; the tiny VLA uses the same shape scaled down. It shares
the backbone (no separate critic network) and always stays trainable, whatever the fine-tuning mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int, dims: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_dim = hidden_size
        for d in dims:
            layers += [nn.Linear(in_dim, d), nn.GELU()]
            in_dim = d
        out = nn.Linear(in_dim, 1)
        # Start near zero so early PPO advantages are not dominated by a random critic.
        nn.init.zeros_(out.bias)
        out.weight.data.mul_(0.01)
        layers.append(out)
        self.net = nn.Sequential(*layers)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # Kept in float32 even over a bf16 backbone: value targets need the precision.
        return self.net(hidden.float()).squeeze(-1)
