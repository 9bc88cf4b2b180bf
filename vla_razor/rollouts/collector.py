"""On-policy training rollouts: a fixed number of steps in every env of a vector env.

The vector env may be any gymnasium-like one with same-step autoreset (gymnasium's AsyncVectorEnv, the
engine's pool view, the simulator-free fake env of the trainer tests). The collector records what GAE
needs, including V(final observation) of episodes cut by the time limit, so truncation is bootstrapped
and termination is not. It times the simulator and the policy separately, so the trainers can report
where wall time goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vla_razor.rollouts.observations import OBS_SKIP, final_info_value, final_obs, info_array, policy_batch
from vla_razor.rollouts.settings import policy_threads


@dataclass
class EpisodeStats:
    success: bool
    length: int
    episode_return: float
    sim_error: str | None = None


@dataclass(kw_only=True)
class Rollout:
    """T steps x N envs of on-policy data (time-major). Built by keyword only: several fields share a
    shape and a dtype (``terminated`` / ``truncated`` / ``success``), so a swap by position would pass."""

    batches: list[Any]  # T policy batches of N observations each
    token_ids: torch.Tensor  # [T, N, 7]
    log_probs: torch.Tensor  # [T, N]
    values: torch.Tensor  # [T, N]
    rewards: torch.Tensor  # [T, N]
    terminated: torch.Tensor  # [T, N] bool
    truncated: torch.Tensor  # [T, N] bool
    final_values: torch.Tensor  # [T, N] V(final obs) where truncated, else 0
    last_value: torch.Tensor  # [N] V(obs after the last step)
    success: torch.Tensor  # [T, N] bool: the episode ended successfully at this step
    episodes: list[EpisodeStats] = field(default_factory=list)
    env_seconds: float = 0.0
    policy_seconds: float = 0.0

    @property
    def num_steps(self) -> int:
        return int(self.rewards.numel())


class RolloutCollector:
    """Keeps the vector env's current observation and per-env episode counters between rollouts."""

    def __init__(
        self, venv: Any, reward: str = "binary", lockstep: Callable[[bool], bool] | None = None
    ) -> None:
        """``lockstep(needed)`` says whether any rank needs a data-dependent extra policy pass (FSDP:
        such passes are collectives, so every rank must take part); None for one process or DDP."""
        if reward not in {"binary", "shaped"}:
            raise ValueError(f"reward must be 'binary' or 'shaped', got {reward!r}")
        self.venv = venv
        self.reward = reward
        self.lockstep: Callable[[bool], bool] = lockstep or (lambda needed: needed)
        self._last_batch: Any = None
        self.num_envs = int(venv.num_envs)
        self.obs: dict[str, Any] | None = None
        self.ep_len = np.zeros(self.num_envs, dtype=np.int64)
        self.ep_ret = np.zeros(self.num_envs, dtype=np.float64)

    def reset(self, seeds: Sequence[int]) -> None:
        """Start fresh, explicitly seeded episodes in every env.

        Trainers call this at the start of every update: the rollout then depends only on the seeds and
        the policy, so a resumed run replays exactly what an uninterrupted one would have collected.
        """
        self.obs, _ = self.venv.reset(seed=[int(s) for s in seeds])
        self.ep_len[:] = 0
        self.ep_ret[:] = 0.0

    @torch.no_grad()
    def collect(
        self,
        policy: Any,
        num_steps: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Rollout:
        """``num_steps`` steps of every env; with a vector env split into two groups (the engine's
        :class:`~vla_razor.rollouts.vector.PoolVectorEnv`) the policy decodes one group while the other
        steps. Either way the rollout holds the same kind of data, env by env in the same order."""
        if self.obs is None:
            raise RuntimeError("RolloutCollector.reset(seeds) must be called before collect()")
        groups = getattr(self.venv, "groups", None)
        with policy_threads(getattr(self.venv, "policy_threads", None)):
            if groups is not None and len(groups) == 2:
                steps, episodes, t_env, t_pol = self._collect_pipelined(
                    policy, num_steps, groups, temperature, generator
                )
            else:
                steps, episodes, t_env, t_pol = self._collect_sequential(
                    policy, num_steps, temperature, generator
                )
            t0 = time.perf_counter()
            last_value = policy.value(policy_batch(policy, self.obs)).float().cpu()
            t_pol += time.perf_counter() - t0
        batches, tokens, logps, values, rewards, terms, truncs, finals, succ = zip(*steps, strict=True)
        return Rollout(
            batches=list(batches),
            token_ids=torch.stack(tokens),
            log_probs=torch.stack(logps),
            values=torch.stack(values),
            rewards=torch.stack(rewards),
            terminated=torch.stack(terms),
            truncated=torch.stack(truncs),
            final_values=torch.stack(finals),
            last_value=last_value,
            success=torch.stack(succ),
            episodes=episodes,
            env_seconds=t_env,
            policy_seconds=t_pol,
        )

    def _collect_sequential(
        self, policy: Any, num_steps: int, temperature: float, generator: torch.Generator | None
    ) -> tuple[list[tuple[Any, ...]], list[EpisodeStats], float, float]:
        """Decode for every env, then step every env: for any gymnasium-like vector env."""
        t_env = t_pol = 0.0
        steps: list[tuple[Any, ...]] = []
        episodes: list[EpisodeStats] = []
        every = list(range(self.num_envs))
        for _ in range(num_steps):
            t0 = time.perf_counter()
            batch = self._last_batch = policy_batch(policy, self.obs)
            out = policy.act(batch, temperature=temperature, generator=generator)
            t1 = time.perf_counter()
            obs, reward, terminated, truncated, info = self.venv.step(
                np.asarray(out.actions, dtype=np.float32)
            )
            t2 = time.perf_counter()
            record = self._record(policy, every, reward, terminated, truncated, info, episodes)
            t3 = time.perf_counter()
            steps.append(_step_tensors(batch, out, *record))
            self.obs = obs
            t_pol += (t1 - t0) + (t3 - t2)
            t_env += t2 - t1
        return steps, episodes, t_env, t_pol

    def _collect_pipelined(
        self,
        policy: Any,
        num_steps: int,
        groups: Sequence[Sequence[int]],
        temperature: float,
        generator: torch.Generator | None,
    ) -> tuple[list[tuple[Any, ...]], list[EpisodeStats], float, float]:
        """Double buffering: while group A's envs step, the policy decodes for group B, and back.

        Decodes run in a fixed order (A0, B0, A1, B1, ...) on a fixed split of the envs, so the rollout is
        a function of the seeds and the policy, as the sequential one is.
        """
        a, b = (list(g) for g in groups)
        if a + b != list(range(self.num_envs)):
            raise ValueError(f"env groups must split the envs into two ranges in order, got {groups}")
        assert self.obs is not None
        obs = {0: _take(self.obs, a), 1: _take(self.obs, b)}
        sent: dict[int, tuple[Any, Any]] = {}
        t_env = t_pol = 0.0
        steps: list[tuple[Any, ...]] = []
        episodes: list[EpisodeStats] = []

        def launch(g: int) -> float:
            t0 = time.perf_counter()
            batch = self._last_batch = policy_batch(policy, obs[g])
            out = policy.act(batch, temperature=temperature, generator=generator)
            self.venv.step_async(np.asarray(out.actions, dtype=np.float32), group=g)
            sent[g] = (batch, out)
            return time.perf_counter() - t0

        def land(g: int, envs: list[int], t: int) -> tuple[tuple[Any, ...], float, float]:
            t0 = time.perf_counter()
            next_obs, reward, terminated, truncated, info = self.venv.step_wait(group=g)
            t1 = time.perf_counter()
            record = self._record(policy, envs, reward, terminated, truncated, info, episodes)
            obs[g] = next_obs
            return _step_tensors(*sent.pop(g), *record), t1 - t0, time.perf_counter() - t1

        t_pol += launch(0)
        for t in range(num_steps):
            t_pol += launch(1)  # group A steps meanwhile
            part_a, wait_a, pol_a = land(0, a, t)
            if t + 1 < num_steps:
                t_pol += launch(0)  # group B steps meanwhile
            part_b, wait_b, pol_b = land(1, b, t)
            steps.append(_join_steps(part_a, part_b))
            t_env += wait_a + wait_b
            t_pol += pol_a + pol_b
        self.obs = _join_obs(obs[0], obs[1])
        return steps, episodes, t_env, t_pol

    def _record(
        self,
        policy: Any,
        envs: list[int],
        reward: Any,
        terminated: Any,
        truncated: Any,
        info: dict[str, Any],
        episodes: list[EpisodeStats],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor, np.ndarray]:
        """Rewards, done flags, V(final obs) of truncated episodes, and finished episodes of ``envs``."""
        n = len(envs)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool) & ~terminated
        success = info_array(info, "is_success", n, terminated | truncated)
        r = success.astype(np.float32) if self.reward == "binary" else np.asarray(reward, dtype=np.float32)
        final_v = torch.zeros(n)
        if self.lockstep(bool(truncated.any())):
            if truncated.any():
                # Truncation is bootstrapped from V(final observation); termination is not.
                idx = np.flatnonzero(truncated)
                final_v[idx] = policy.value(policy_batch(policy, final_obs(info, idx))).float().cpu()
            else:  # another rank needs the pass: take part in its collectives, discard the values
                policy.value(self._last_batch)
        self.ep_len[envs] += 1
        self.ep_ret[envs] += r
        for j in np.flatnonzero(terminated | truncated):
            i = envs[j]
            err = final_info_value(info, j, "sim_error")
            episodes.append(EpisodeStats(bool(success[j]), int(self.ep_len[i]), float(self.ep_ret[i]), err))
            self.ep_len[i] = 0
            self.ep_ret[i] = 0.0
        return r, terminated, truncated, final_v, success & (terminated | truncated)


def _step_tensors(
    batch: Any,
    out: Any,
    r: np.ndarray,
    terminated: np.ndarray,
    truncated: np.ndarray,
    final_v: torch.Tensor,
    success: np.ndarray,
) -> tuple[Any, ...]:
    """One time step of some envs as the rollout stores it."""
    return (
        batch,
        out.token_ids.cpu(),
        out.log_prob.float().cpu(),
        out.value.float().cpu(),
        torch.as_tensor(r),
        torch.as_tensor(terminated),
        torch.as_tensor(truncated),
        final_v,
        torch.as_tensor(success),
    )


def _join_steps(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
    """Group A's and group B's share of one time step -> the step of all envs, in env order."""
    batch = type(a[0]).cat([a[0], b[0]])
    return (batch, *(torch.cat([x, y]) for x, y in zip(a[1:], b[1:], strict=True)))


def _take(obs: dict[str, Any], envs: list[int]) -> dict[str, Any]:
    return {k: [v[i] for i in envs] if k in OBS_SKIP else np.asarray(v)[envs] for k, v in obs.items()}


def _join_obs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {k: list(a[k]) + list(b[k]) if k in OBS_SKIP else np.concatenate([a[k], b[k]]) for k in a}
