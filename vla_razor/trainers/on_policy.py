"""The loop PPO and RFT share: per iteration, re-seed the envs, collect an on-policy rollout, let the
algorithm update the policy, then log, evaluate and checkpoint.

Re-seeding the envs from (seed, rank, iteration) at the start of every iteration makes the rollout a
function of the seeds and the policy only, so ``resume=true`` replays exactly what an uninterrupted run
would have collected (the simulator state itself is never checkpointed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_razor.rollouts import Rollout, RolloutCollector
from vla_razor.sampling import seeded_generator
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.trainers.common import (
    InterruptFlag,
    NonFiniteLossError,
    make_optimizer,
    trainable_parameters,
)
from vla_razor.trainers.distributed import DistInfo, all_reduce_mean, broadcast_parameters
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

TRAIN_SEED_SPACE = 100_000  # held-out evaluation seeds start at 100000; training never reaches them

Evaluator = Callable[[Any, int], dict[str, float]]
# (policy, rollout, optimizer, params, settings, CPU shuffle generator, dist_info) -> metrics of the update
UpdateFn = Callable[
    [Any, Rollout, torch.optim.Optimizer, list[torch.nn.Parameter], Any, torch.Generator, DistInfo],
    dict[str, float],
]


def update_seeds(seed: int, update: int, rank: int, num_envs: int, world_size: int) -> list[int]:
    """Env seeds of one iteration: distinct across iterations, ranks and envs, below the held-out range."""
    base = seed * 7919 + (update * world_size + rank) * num_envs
    return [(base + i) % TRAIN_SEED_SPACE for i in range(num_envs)]


def gather_rng(generators: dict[str, torch.Generator], dist_info: DistInfo) -> list[dict[str, Any]]:
    """RNG states of every rank (rank r restores entry r on resume)."""
    mine = capture_rng_state(generators=generators)
    if not dist_info.enabled:
        return [mine]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist_info.world_size
    dist.all_gather_object(gathered, mine)
    return gathered


def episode_metrics(rollout: Rollout) -> dict[str, float]:
    episodes = rollout.episodes
    if not episodes:
        return {"episodes": 0.0}
    return {
        "episode_success": float(np.mean([e.success for e in episodes])),
        "episode_length": float(np.mean([e.length for e in episodes])),
        "episodes": float(len(episodes)),
        "sim_errors": float(sum(1 for e in episodes if e.sim_error)),
    }


def run_on_policy(
    name: str,
    policy: Any,
    venv: Any,
    settings: Any,
    total: int,
    update_fn: UpdateFn,
    run_dir: str | Path,
    config: Any,
    *,
    reward: str = "binary",
    resume_state: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    evaluator: Evaluator | None = None,
    logger: MetricLogger | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Run ``total`` iterations of collect-then-``update_fn``; returns the last logged metrics."""
    dist_info = dist_info or DistInfo()
    params = trainable_parameters(policy)
    broadcast_parameters(params, dist_info)
    optimizer, scheduler = make_optimizer(params, settings.lr, settings.weight_decay, 0, total, 1.0)
    # Two streams: action sampling runs on the policy's device (torch.multinomial needs a generator
    # there), minibatch shuffling on the CPU (torch.randperm builds the permutation on the CPU).
    generator = seeded_generator(settings.seed * 1000 + dist_info.rank, policy.device)
    shuffler = seeded_generator(settings.seed * 1000 + dist_info.rank, "cpu")
    generators = {"sample": generator, "shuffle": shuffler}
    iteration = 0
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        iteration = int(resume_state["update"])
        restore_rng_state(resume_state["rng"][dist_info.rank], generators=generators)
        log.info("resumed %s at iteration %d", name, iteration)
    collector = RolloutCollector(venv, reward=reward)
    logger = logger or MetricLogger(run_dir, enabled=dist_info.is_main)
    last: dict[str, float] = {}
    totals = {"env": 0.0, "policy": 0.0, "update": 0.0}

    def seeds() -> list[int]:
        return update_seeds(
            settings.seed, iteration, dist_info.rank, collector.num_envs, dist_info.world_size
        )

    def checkpoint(metrics: dict[str, float], nonfinite: str | None = None) -> Path | None:
        state = {
            "trainer": name,
            "update": iteration,
            "step": iteration,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": gather_rng(generators, dist_info),  # every rank takes part in the gather
            "settings": asdict(settings),
            "env_seeds_next": seeds(),
            "nonfinite": nonfinite,
        }
        if dist_info.is_main:
            return save_checkpoint(
                run_dir,
                iteration,
                policy=policy,
                trainer_state=state,
                config=config,
                metrics=metrics,
                keep_last=settings.keep_last,
            )
        return None

    interrupted = InterruptFlag()
    bar = tqdm(
        total=total, initial=iteration, desc=name, unit="iter", disable=not (progress and dist_info.is_main)
    )
    try:
        while iteration < total:
            t0 = time.perf_counter()
            collector.reset(seeds())
            policy.eval()  # sampling: no dropout
            rollout = collector.collect(
                policy, settings.num_steps, temperature=settings.temperature, generator=generator
            )
            t1 = time.perf_counter()
            try:
                metrics = update_fn(policy, rollout, optimizer, params, settings, shuffler, dist_info)
            except NonFiniteLossError as err:
                # Every rank raises together (the check is all-reduced). The weights are still finite:
                # the bad step was never taken. They sit part-way through this iteration's update; the
                # checkpoint records that (`nonfinite` in its trainer state), and a resume from it
                # re-runs the iteration from these weights, so it is not bit-exact.
                path = checkpoint(last, nonfinite=str(err))
                raise NonFiniteLossError(
                    f"{err} at {name} iteration {iteration + 1}; last good weights saved in {path}"
                ) from None
            scheduler.step()
            t2 = time.perf_counter()
            iteration += 1
            totals["env"] += rollout.env_seconds
            totals["policy"] += rollout.policy_seconds
            totals["update"] += t2 - t1
            metrics.update(episode_metrics(rollout))
            metrics.update(
                {
                    "reward_mean": float(rollout.rewards.mean()),
                    "env_steps_per_s": rollout.num_steps / max(t1 - t0, 1e-9),
                    "time_share_env": rollout.env_seconds / max(t2 - t0, 1e-9),
                    "time_share_policy": rollout.policy_seconds / max(t2 - t0, 1e-9),
                    "time_share_update": (t2 - t1) / max(t2 - t0, 1e-9),
                }
            )
            last = all_reduce_mean({k: v for k, v in metrics.items() if np.isfinite(v)}, dist_info)
            logger.log(iteration, last, prefix="train/")
            bar.update(1)
            bar.set_postfix(success=f"{metrics.get('episode_success', float('nan')):.2f}")
            if evaluator is not None and settings.eval_every and iteration % settings.eval_every == 0:
                last.update(evaluator(policy, iteration))
            if (settings.save_every and iteration % settings.save_every == 0) or iteration == total:
                checkpoint(last)
            if interrupted:
                checkpoint(last)
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        log.warning("interrupted at iteration %d; checkpoint saved, resume with resume=true", iteration)
        raise
    finally:
        interrupted.restore()
        bar.close()
        logger.close()
    wall = sum(totals.values())
    if wall > 0:
        last.update({f"total_time_share_{k}": v / wall for k, v in totals.items()})
    return last
