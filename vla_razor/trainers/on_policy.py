"""The loop PPO and RFT share: per iteration, re-seed the envs, collect an on-policy rollout, let the
algorithm update the policy, then log, evaluate and checkpoint.

Re-seeding the envs from (seed, rank, iteration) at the start of every iteration makes the rollout a
function of the seeds and the policy only, so ``resume=true`` replays exactly what an uninterrupted run
would have collected (the simulator state itself is never checkpointed).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_razor.rollouts import Rollout, RolloutCollector
from vla_razor.sampling import seeded_generator
from vla_razor.seeds import HELDOUT_SEED_START
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.trainers.common import (
    NonFiniteLossError,
    TrainerSettings,
    make_optimizer,
    trainable_parameters,
)
from vla_razor.trainers.distributed import (
    DistInfo,
    all_reduce_mean,
    any_rank,
    broadcast_parameters,
    mean_over_ranks,
)
from vla_razor.trainers.fsdp import full_backbone_state, is_sharded, load_optimizer_state, optimizer_state
from vla_razor.trainers.interrupts import InterruptFlag
from vla_razor.trainers.kl_monitor import Forecaster, KLMonitor
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import RngStreams, gather_rng_states

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class OnPolicySettings(TrainerSettings):
    """What every on-policy trainer has, besides what every trainer has."""

    num_steps: int = 64
    """steps per env per iteration (the envs are re-seeded every iteration)"""
    temperature: float = 1.0
    """sampling temperature of the action tokens"""
    update_epochs: int = 2
    """epochs over each iteration's rollout (RFT: over its kept steps)"""

    _positive = ("num_iterations", "num_steps", "update_epochs", "minibatch_size", "temperature")


Evaluator = Callable[[Any, int], dict[str, float]]
# (policy, rollout, optimizer, params, settings, CPU shuffle generator, dist_info) -> metrics of the update
UpdateFn = Callable[
    [Any, Rollout, torch.optim.Optimizer, list[torch.nn.Parameter], Any, torch.Generator, DistInfo],
    dict[str, float],
]


def update_seeds(seed: int, update: int, rank: int, num_envs: int, world_size: int) -> list[int]:
    """Env seeds of one iteration: distinct across iterations, ranks and envs, below the held-out range."""
    base = seed * 7919 + (update * world_size + rank) * num_envs
    return [(base + i) % HELDOUT_SEED_START for i in range(num_envs)]


NO_SIGNAL_AFTER = 16  # episodes without a single success before the trainer says so


class SignalWatch:
    """Says plainly when on-policy training has had no successful episode to learn from.

    With a sparse success reward, PPO's policy gradient and RFT's kept set are both empty until pi0
    succeeds at least once; training then only fits the critic (or nothing) while looking busy.
    """

    def __init__(self, name: str, dist_info: DistInfo) -> None:
        self.name = name
        self.dist_info = dist_info
        self.episodes = 0.0
        self.successes = 0.0
        self.warned_at = 0.0

    def update(self, rollout: Rollout, iteration: int, reward: str) -> float:
        """Adds this iteration's episodes (over all ranks); returns the success rate seen so far."""
        world = self.dist_info.world_size
        self.episodes += world * mean_over_ranks(float(len(rollout.episodes)), self.dist_info)
        self.successes += world * mean_over_ranks(
            float(sum(e.success for e in rollout.episodes)), self.dist_info
        )
        rate = self.successes / self.episodes if self.episodes else float("nan")
        # Warn at the first NO_SIGNAL_AFTER episodes, then each time the count doubles.
        if self.successes == 0 and self.episodes >= max(NO_SIGNAL_AFTER, 2 * self.warned_at):
            self.warned_at = self.episodes
            if self.dist_info.is_main:
                log.warning(
                    "%s: 0 successes in the %d episodes sampled so far (iterations 1-%d): with reward=%s the "
                    "policy has nothing to learn from (%s). Remedies: more episodes per update (num_envs, "
                    "trainer.num_steps); trainer.reward=shaped (PPO); or start from a policy that sometimes "
                    "succeeds: a short BC warm-up (vla-razor train trainer=bc ...), then policy.pretrained=<its "
                    "checkpoint>; in a study, a sweep entry with warm_start=<the bc entry's run> (its KL from "
                    "pi0 is part of what the study measures)",
                    self.name,
                    int(self.episodes),
                    iteration,
                    reward,
                    "PPO updates the critic only" if self.name == "ppo" else "RFT keeps no episode",
                )
        return rate


def concat_batches(batches: list[Any]) -> Any:
    return type(batches[0]).cat(batches)


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
    forecaster: Forecaster | None = None,
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
    streams = RngStreams(generators={"sample": generator, "shuffle": shuffler})
    iteration = 0
    if resume_state is not None:
        load_optimizer_state(policy, optimizer, resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        iteration = int(resume_state["update"])
        streams.restore(resume_state["rng"][dist_info.rank])
        log.info("resumed %s at iteration %d", name, iteration)
    # Sharded forwards are collectives: a data-dependent extra pass (V of a truncated episode's final
    # observation) must then run on every rank at once.
    lockstep = (lambda flag: any_rank(flag, dist_info)) if is_sharded(policy) else None
    collector = RolloutCollector(venv, reward=reward, lockstep=lockstep)
    logger = logger or MetricLogger(run_dir, enabled=dist_info.is_main)
    last: dict[str, float] = {}
    totals = {"env": 0.0, "policy": 0.0, "update": 0.0}

    def seeds() -> list[int]:
        return update_seeds(
            settings.seed, iteration, dist_info.rank, collector.num_envs, dist_info.world_size
        )

    def checkpoint(metrics: dict[str, float], nonfinite: str | None = None) -> Path | None:
        # Gathers run on every rank (RNG states; with FSDP the weights and optimizer moments too).
        backbone = full_backbone_state(policy)
        state = {
            "trainer": name,
            "update": iteration,
            "step": iteration,
            "optimizer": optimizer_state(policy, optimizer),
            "scheduler": scheduler.state_dict(),
            "rng": gather_rng_states(streams, dist_info),  # every rank takes part in the gather
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
                backbone_state=backbone,
            )
        return None

    monitor = KLMonitor(settings, run_dir, dist_info, seed=settings.seed * 1000 + 999, forecaster=forecaster)
    watch = SignalWatch(name, dist_info)
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
            # The first rollout of a fresh run is pi0's own on the new task: the KL probe's states.
            monitor.ensure_probe(policy, functools.partial(concat_batches, rollout.batches))
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
            metrics["success_rate_so_far"] = watch.update(rollout, iteration, reward)
            metrics.update(
                {
                    "reward_mean": float(rollout.rewards.mean()),
                    "env_steps_per_s": rollout.num_steps / max(t1 - t0, 1e-9),
                    "time_share_env": rollout.env_seconds / max(t2 - t0, 1e-9),
                    "time_share_policy": rollout.policy_seconds / max(t2 - t0, 1e-9),
                    "time_share_update": (t2 - t1) / max(t2 - t0, 1e-9),
                }
            )
            saving = bool(settings.save_every and iteration % settings.save_every == 0) or iteration == total
            saving = saving or bool(interrupted)
            over_budget = False
            if monitor.due(iteration, saving):
                metrics.update(monitor.metrics(monitor.measure(policy)))  # KL already the mean over ranks
                over_budget = monitor.over_budget(metrics["forward_kl_pi0"], iteration)
            last = all_reduce_mean({k: v for k, v in metrics.items() if np.isfinite(v)}, dist_info)
            logger.log(iteration, last, prefix="train/")
            bar.update(1)
            bar.set_postfix(success=f"{metrics.get('episode_success', float('nan')):.2f}")
            if over_budget:
                break  # no checkpoint over budget: the last one written is the last under it
            if evaluator is not None and settings.eval_every and iteration % settings.eval_every == 0:
                last.update(evaluator(policy, iteration))
            if saving:
                checkpoint(last)
                monitor.last_under_budget = iteration
            if interrupted:
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
