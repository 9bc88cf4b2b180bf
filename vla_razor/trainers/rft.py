"""Rejection-sampling fine-tuning (RL's Razor's "1-0 REINFORCE"): sample on-policy episodes, keep the
successful ones, behaviour-clone their sampled action tokens, repeat.

It is PPO's rollout collector plus BC's token cross-entropy: the data is on-policy (what RL's Razor
identifies as the reason RL forgets less), and there are no negative gradients, critic or ratios.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_razor.trainers.bc import _InterruptFlag
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.trainers.common import (
    NonFiniteLossError,
    check_positive,
    grad_norm_and_clip,
    make_optimizer,
    trainable_parameters,
)
from vla_razor.trainers.distributed import (
    DistInfo,
    all_reduce_gradients,
    all_reduce_mean,
    broadcast_parameters,
)
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.ppo import Evaluator, _gather_rng_torch, update_seeds
from vla_razor.trainers.rng import restore_rng_state
from vla_razor.trainers.rollout import Rollout, RolloutCollector

log = logging.getLogger(__name__)


@dataclass
class RFTSettings:
    lr: float = 1e-4
    weight_decay: float = 0.0
    iterations: int = 20
    num_steps: int = 64
    temperature: float = 1.0
    epochs_per_iteration: int = 2
    batch_size: int = 32
    grad_clip: float = 1.0
    save_every: int = 5
    keep_last: int | None = 3
    eval_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("trainer.lr", self.lr)
        check_positive("trainer.temperature", self.temperature)
        for name in ("iterations", "num_steps", "epochs_per_iteration", "batch_size"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"trainer.{name} must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RFTSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


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


def train_rft(
    policy: Any,
    venv: Any,
    settings: RFTSettings,
    run_dir: str | Path,
    config: Any,
    *,
    resume_state: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    evaluator: Evaluator | None = None,
    logger: MetricLogger | None = None,
    progress: bool = True,
) -> dict[str, float]:
    dist_info = dist_info or DistInfo()
    params = trainable_parameters(policy)
    broadcast_parameters(params, dist_info)
    optimizer, scheduler = make_optimizer(
        params, settings.lr, settings.weight_decay, 0, settings.iterations, 1.0
    )
    generator = torch.Generator().manual_seed(settings.seed * 1000 + dist_info.rank)
    iteration = 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        iteration = int(resume_state["update"])
        restore_rng_state(resume_state["rng"][dist_info.rank], generators={"sample": generator})
    collector = RolloutCollector(venv, reward="binary")
    logger = logger or MetricLogger(run_dir, enabled=dist_info.is_main)
    device = next(policy.parameters()).device
    last: dict[str, float] = {}

    def checkpoint(metrics: dict[str, float]) -> None:
        state = {
            "trainer": "rft",
            "update": iteration,
            "step": iteration,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _gather_rng_torch(generator, dist_info),
            "settings": asdict(settings),
        }
        if dist_info.is_main:
            save_checkpoint(
                run_dir,
                iteration,
                policy=policy,
                trainer_state=state,
                config=config,
                metrics=metrics,
                keep_last=settings.keep_last,
            )

    interrupted = _InterruptFlag()
    bar = tqdm(
        total=settings.iterations,
        initial=iteration,
        desc="rft",
        unit="iter",
        disable=not (progress and dist_info.is_main),
    )
    try:
        while iteration < settings.iterations:
            collector.reset(
                update_seeds(
                    settings.seed, iteration, dist_info.rank, collector.num_envs, dist_info.world_size
                )
            )
            policy.eval()
            rollout = collector.collect(
                policy, settings.num_steps, temperature=settings.temperature, generator=generator
            )
            keep = successful_steps(rollout).reshape(-1)
            kept = int(keep.sum())
            losses: list[float] = []
            if kept:
                batch = type(rollout.batches[0]).cat(rollout.batches)[torch.nonzero(keep).squeeze(1)]
                tokens = rollout.token_ids.reshape(keep.shape[0], -1)[keep]
                policy.train()
                for _ in range(settings.epochs_per_iteration):
                    order = torch.randperm(kept, generator=generator)
                    for start in range(0, kept, settings.batch_size):
                        idx = order[start : start + settings.batch_size]
                        scored = policy.score(batch[idx].to(device), tokens[idx].to(device))
                        loss = -scored.token_log_probs.mean()
                        if not torch.isfinite(loss):
                            raise NonFiniteLossError(f"non-finite RFT loss at iteration {iteration}")
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        all_reduce_gradients(params, dist_info)
                        grad_norm_and_clip(params, settings.grad_clip)
                        optimizer.step()
                        losses.append(float(loss.detach()))
            scheduler.step()
            iteration += 1
            episodes = rollout.episodes
            metrics = {
                "episode_success": float(np.mean([e.success for e in episodes])) if episodes else 0.0,
                "episodes": float(len(episodes)),
                "kept_steps": float(kept),
                "loss": float(np.mean(losses)) if losses else float("nan"),
            }
            last = all_reduce_mean({k: v for k, v in metrics.items() if np.isfinite(v)}, dist_info)
            logger.log(iteration, last, prefix="train/")
            bar.update(1)
            bar.set_postfix(success=f"{metrics['episode_success']:.2f}", kept=kept)
            if evaluator is not None and settings.eval_every and iteration % settings.eval_every == 0:
                last.update(evaluator(policy, iteration))
            if (
                settings.save_every and iteration % settings.save_every == 0
            ) or iteration == settings.iterations:
                checkpoint(last)
            if interrupted:
                checkpoint(last)
                raise KeyboardInterrupt
    finally:
        interrupted.restore()
        bar.close()
        logger.close()
    return last
