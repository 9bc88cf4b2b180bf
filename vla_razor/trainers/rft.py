"""Rejection-sampling fine-tuning (RL's Razor's "1-0 REINFORCE"): sample on-policy episodes, keep the
successful ones, behaviour-clone their sampled action tokens, repeat.

It is PPO's rollout collector plus BC's token cross-entropy: the data is on-policy (what RL's Razor
identifies as the reason RL forgets less), and there are no negative gradients, critic or ratios.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.rollouts import Rollout
from vla_razor.trainers.base import StepContext, TrainingRun
from vla_razor.trainers.common import NonFiniteLossError, grad_norm_and_clip
from vla_razor.trainers.distributed import all_reduce_gradients, any_rank, max_over_ranks
from vla_razor.trainers.loop import run_training
from vla_razor.trainers.on_policy import OnPolicy, OnPolicySettings

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RFTSettings(OnPolicySettings):
    """Rejection-sampling fine-tuning: the one source of its defaults (configs/trainer/rft.yaml only
    overrides). Every setting is one RFT shares: documented on TrainerSettings and OnPolicySettings."""

    name: str = "rft"
    lr: float = 1e-4
    num_iterations: int = 20
    save_every: int = 5


def successful_steps(rollout: Rollout) -> torch.Tensor:
    """Boolean [T, N] mask of the steps that belong to episodes which ended successfully in the rollout."""
    ended = (rollout.terminated | rollout.truncated).numpy()
    success = rollout.success.numpy()
    keep = np.zeros_like(ended, dtype=bool)
    T, N = ended.shape
    for i in range(N):
        start = 0
        for t in range(T):
            if ended[t, i]:
                keep[start : t + 1, i] = success[t, i]
                start = t + 1
        # Steps after the last episode end belong to an unfinished episode: not kept.
    return torch.as_tensor(keep)


def rft_update(
    ctx: StepContext[RFTSettings], rollout: Rollout, generator: torch.Generator
) -> dict[str, float]:
    """Behaviour-clone the sampled action tokens of the rollout's successful episodes."""
    settings, dist_info = ctx.settings, ctx.dist_info
    keep = successful_steps(rollout).reshape(-1)
    kept = int(keep.sum())
    losses: list[float] = []
    device = next(ctx.policy.parameters()).device
    # Under DDP every rank must take the same number of optimizer steps (each step all-reduces), so all
    # ranks run the largest rank's minibatch count; a rank with fewer kept steps cycles through its own,
    # and a rank with none contributes zero gradients.
    n_batches = max_over_ranks(-(-kept // settings.minibatch_size), dist_info)
    if n_batches == 0:
        return {"kept_steps": 0.0, "loss": float("nan")}
    batch = type(rollout.batches[0]).cat(rollout.batches)
    tokens = rollout.token_ids.reshape(keep.shape[0], -1)
    kept_index = torch.nonzero(keep).squeeze(1)
    ctx.policy.train()
    for _ in range(settings.update_epochs):
        order = kept_index[torch.randperm(kept, generator=generator)] if kept else kept_index
        for b in range(n_batches):
            ctx.optimizer.zero_grad(set_to_none=True)
            if kept:
                idx = order[(torch.arange(settings.minibatch_size) + b * settings.minibatch_size) % kept][
                    : min(kept, settings.minibatch_size)
                ]
                loss = -ctx.policy.score(batch[idx].to(device), tokens[idx].to(device)).token_log_probs.mean()
            else:
                loss = torch.zeros((), device=device)
            # Decided over all ranks, so no rank leaves the loop of all-reduces alone.
            if any_rank(not torch.isfinite(loss), dist_info):
                raise NonFiniteLossError(
                    f"non-finite RFT loss ({float(loss.detach())} on rank {dist_info.rank}) in minibatch {b}"
                )
            if kept:
                loss.backward()
                losses.append(float(loss.detach()))
            all_reduce_gradients(ctx.params, dist_info)
            if not np.isfinite(grad_norm_and_clip(ctx.params, settings.max_grad_norm)):
                raise NonFiniteLossError(f"non-finite RFT gradient norm in minibatch {b}")
            ctx.optimizer.step()
    return {"kept_steps": float(kept), "loss": float(np.mean(losses)) if losses else float("nan")}


def train_rft(
    policy: Any, venv: Any, settings: RFTSettings, run_dir: str | Path, config: Any, **options: Any
) -> dict[str, float]:
    """Run ``settings.num_iterations`` sample-filter-clone iterations; ``options`` are the rest of
    :class:`~vla_razor.trainers.base.TrainingRun` (resume_state, dist_info, evaluator, logger, progress,
    forecaster). Returns the last logged metrics."""
    trainer = OnPolicy("rft", venv, settings, rft_update, reward="binary")
    return run_training(trainer, policy, TrainingRun(Path(run_dir), config, **options))
