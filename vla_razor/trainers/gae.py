"""Generalised advantage estimation that tells the two ways an episode ends apart.

- terminated (success, or a simulator error: a failure whose state is lost): the future is worth
  nothing, so no bootstrap;
- truncated (time limit): the episode was cut, not finished, so bootstrap from
  V(final observation) — the observation the env reached before the autoreset replaced it.
CleanRL's PPO treats both as terminal, which biases values near the horizon; we don't.
"""

from __future__ import annotations

import torch

from vla_razor.errors import BadInputError


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    final_values: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns for time-major [T, N] tensors.

    ``final_values[t]`` is V(final observation) for envs truncated at step t (ignored elsewhere);
    ``last_value`` is V(observation after step T-1), used when the episode continues past the rollout.
    """
    if not 0.0 <= gamma <= 1.0 or not 0.0 <= lam <= 1.0:
        raise BadInputError(f"gamma and lambda must be in [0, 1], got gamma={gamma}, lambda={lam}")
    T = rewards.shape[0]
    advantages = torch.zeros_like(values, dtype=torch.float32)
    running = torch.zeros_like(last_value, dtype=torch.float32)
    term = terminated.float()
    trunc = truncated.float() * (1.0 - term)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else values[t + 1]
        # Value of what follows step t: 0 after termination, V(final obs) after truncation, else V(s_{t+1}).
        bootstrap = (1.0 - term[t]) * ((1.0 - trunc[t]) * next_value + trunc[t] * final_values[t])
        delta = rewards[t] + gamma * bootstrap - values[t]
        # The recursion stops at any episode boundary: the next step belongs to a new episode.
        running = delta + gamma * lam * (1.0 - term[t]) * (1.0 - trunc[t]) * running
        advantages[t] = running
    return advantages, advantages + values
