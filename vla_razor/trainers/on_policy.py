"""On-policy training (PPO, RFT, DAgger): each update is
one iteration that re-seeds the envs, collects a rollout with the current policy, and hands it to the
method's update function.

Re-seeding the envs from (seed, rank, iteration) at the start of every iteration makes the rollout a
function of the seeds and the policy only, so ``resume=true`` replays exactly what an uninterrupted run
would have collected (the simulator state itself is never checkpointed).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla_razor.rollouts import Rollout, RolloutCollector
from vla_razor.sampling import seeded_generator
from vla_razor.seeds import HELDOUT_SEED_START
from vla_razor.trainers.base import Metrics, StepContext, Trainer
from vla_razor.trainers.common import NonFiniteLossError, TrainerSettings
from vla_razor.trainers.distributed import DistInfo, all_reduce_mean, any_rank, mean_over_ranks
from vla_razor.trainers.fsdp import is_sharded
from vla_razor.trainers.rng import RngStreams

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


# (context, the iteration's rollout, the CPU stream that shuffles minibatches) -> the update's metrics.
# It steps ctx.optimizer as often as it likes; the loop steps the schedule once per iteration.
UpdateFn = Callable[[StepContext[Any], Rollout, torch.Generator], Metrics]


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
                    "pi0 is part of what the study measures; configs/warm_start.yaml is a worked recipe)",
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


class OnPolicy(Trainer[OnPolicySettings]):
    """Collect a rollout with the current policy, then let ``update`` learn from it."""

    unit = "iteration"
    # Built by begin(): they depend on the rank and on the policy's device.
    sampler: torch.Generator
    shuffler: torch.Generator
    collector: RolloutCollector
    watch: SignalWatch

    def __init__(
        self, name: str, venv: Any, settings: OnPolicySettings, update: UpdateFn, reward: str = "binary"
    ) -> None:
        self.name = name
        self.venv = venv
        self.settings = settings
        self.update = update
        self.reward = reward
        self.totals = {"env": 0.0, "policy": 0.0, "update": 0.0}

    def begin(self, ctx: StepContext[OnPolicySettings]) -> RngStreams:
        seed = self.settings.seed * 1000 + ctx.dist_info.rank
        # Two streams: action sampling runs on the policy's device (torch.multinomial needs a generator
        # there), minibatch shuffling on the CPU (torch.randperm builds the permutation on the CPU).
        self.sampler = seeded_generator(seed, ctx.policy.device)
        self.shuffler = seeded_generator(seed, "cpu")
        # Sharded forwards are collectives: a data-dependent extra pass (V of a truncated episode's final
        # observation) must then run on every rank at once.
        dist_info = ctx.dist_info
        lockstep = (lambda flag: any_rank(flag, dist_info)) if is_sharded(ctx.policy) else None
        self.collector = RolloutCollector(self.venv, reward=self.reward, lockstep=lockstep)
        self.watch = SignalWatch(self.name, dist_info)
        return RngStreams(generators={"sample": self.sampler, "shuffle": self.shuffler})

    def collect_options(self, ctx: StepContext[Any]) -> dict[str, Any]:
        """Extra options of the next rollout (:meth:`RolloutCollector.collect`): DAgger records the
        expert's labels and mixes in its actions; PPO and RFT take none."""
        return {}

    def seeds(self, ctx: StepContext[OnPolicySettings]) -> list[int]:
        """Env seeds of the next iteration."""
        info = ctx.dist_info
        return update_seeds(self.settings.seed, ctx.step, info.rank, self.collector.num_envs, info.world_size)

    def step(self, ctx: StepContext[OnPolicySettings]) -> Metrics:
        settings, policy = self.settings, ctx.policy
        t0 = time.perf_counter()
        self.collector.reset(self.seeds(ctx))
        policy.eval()  # sampling: no dropout
        rollout = self.collector.collect(
            policy,
            settings.num_steps,
            temperature=settings.temperature,
            generator=self.sampler,
            **self.collect_options(ctx),
        )
        t1 = time.perf_counter()
        # The first rollout of a fresh run is pi0's own on the new task: the KL probe's states.
        ctx.monitor.ensure_probe(policy, functools.partial(concat_batches, rollout.batches))
        try:
            metrics = self.update(ctx, rollout, self.shuffler)
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"{err} at {self.name} iteration {ctx.step + 1}") from None
        t2 = time.perf_counter()
        self.totals["env"] += rollout.env_seconds
        self.totals["policy"] += rollout.policy_seconds
        self.totals["update"] += t2 - t1
        metrics.update(episode_metrics(rollout))
        metrics["success_rate_so_far"] = self.watch.update(rollout, ctx.step + 1, self.reward)
        metrics.update(
            {
                "reward_mean": float(rollout.rewards.mean()),
                "env_steps_per_s": rollout.num_steps / max(t1 - t0, 1e-9),
                "time_share_env": rollout.env_seconds / max(t2 - t0, 1e-9),
                "time_share_policy": rollout.policy_seconds / max(t2 - t0, 1e-9),
                "time_share_update": (t2 - t1) / max(t2 - t0, 1e-9),
            }
        )
        return metrics

    def report(self, ctx: StepContext[OnPolicySettings], metrics: Metrics, kl: Metrics | None) -> Metrics:
        """Every iteration: one line with the update's, the episodes' and the KL's metrics (mean over ranks)."""
        if kl is not None:
            metrics.update(kl)  # KL already the mean over ranks
        reduced = all_reduce_mean({k: v for k, v in metrics.items() if np.isfinite(v)}, ctx.dist_info)
        ctx.logger.log(ctx.step, reduced, prefix="train/")
        return reduced

    def progress(self, metrics: Metrics) -> dict[str, str]:
        return {"success": f"{metrics.get('episode_success', float('nan')):.2f}"}

    def checkpoint_state(self, ctx: StepContext[OnPolicySettings]) -> dict[str, Any]:
        return {"update": ctx.step, "env_seeds_next": self.seeds(ctx)}

    def summary(self) -> Metrics:
        wall = sum(self.totals.values())
        return {f"total_time_share_{k}": v / wall for k, v in self.totals.items()} if wall > 0 else {}
