"""On-policy training rollouts: a fixed number of steps in every env of a vector env.

The vector env may be any gymnasium-like one with same-step autoreset (gymnasium's AsyncVectorEnv, the
engine's pool view, the simulator-free fake env of the trainer tests). The collector records what GAE
needs, including V(final observation) of episodes cut by the time limit, so truncation is bootstrapped
and termination is not. It times the simulator and the policy separately, so the trainers can report
where wall time goes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vla_razor.rollouts.observations import final_info_value, final_obs, info_array, policy_batch


@dataclass
class EpisodeStats:
    success: bool
    length: int
    episode_return: float
    sim_error: str | None = None


@dataclass
class Rollout:
    """T steps x N envs of on-policy data (time-major)."""

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

    def __init__(self, venv: Any, reward: str = "binary") -> None:
        if reward not in {"binary", "shaped"}:
            raise ValueError(f"reward must be 'binary' or 'shaped', got {reward!r}")
        self.venv = venv
        self.reward = reward
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
        if self.obs is None:
            raise RuntimeError("RolloutCollector.reset(seeds) must be called before collect()")
        t_env = t_pol = 0.0
        batches, tokens, logps, values, rewards, terms, truncs, finals, succ = (
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
        )
        episodes: list[EpisodeStats] = []
        for _ in range(num_steps):
            t0 = time.perf_counter()
            batch = policy_batch(policy, self.obs)
            out = policy.act(batch, temperature=temperature, generator=generator)
            t1 = time.perf_counter()
            obs, reward, terminated, truncated, info = self.venv.step(
                np.asarray(out.actions, dtype=np.float32)
            )
            t2 = time.perf_counter()
            terminated = np.asarray(terminated, dtype=bool)
            truncated = np.asarray(truncated, dtype=bool) & ~terminated
            success = info_array(info, "is_success", self.num_envs, terminated | truncated)
            r = (
                success.astype(np.float32)
                if self.reward == "binary"
                else np.asarray(reward, dtype=np.float32)
            )
            final_v = torch.zeros(self.num_envs)
            if truncated.any():
                idx = np.flatnonzero(truncated)
                final_v[idx] = policy.value(policy_batch(policy, final_obs(info, idx))).float().cpu()
            t3 = time.perf_counter()
            self.ep_len += 1
            self.ep_ret += r
            for i in np.flatnonzero(terminated | truncated):
                err = final_info_value(info, i, "sim_error")
                episodes.append(
                    EpisodeStats(bool(success[i]), int(self.ep_len[i]), float(self.ep_ret[i]), err)
                )
                self.ep_len[i] = 0
                self.ep_ret[i] = 0.0
            batches.append(batch)
            tokens.append(out.token_ids.cpu())
            logps.append(out.log_prob.float().cpu())
            values.append(out.value.float().cpu())
            rewards.append(torch.as_tensor(r))
            terms.append(torch.as_tensor(terminated))
            truncs.append(torch.as_tensor(truncated))
            finals.append(final_v)
            succ.append(torch.as_tensor(success & (terminated | truncated)))
            self.obs = obs
            t_pol += (t1 - t0) + (t3 - t2)
            t_env += t2 - t1
        t0 = time.perf_counter()
        last_value = policy.value(policy_batch(policy, self.obs)).float().cpu()
        t_pol += time.perf_counter() - t0
        return Rollout(
            batches,
            torch.stack(tokens),
            torch.stack(logps),
            torch.stack(values),
            torch.stack(rewards),
            torch.stack(terms),
            torch.stack(truncs),
            torch.stack(finals),
            last_value,
            torch.stack(succ),
            episodes,
            t_env,
            t_pol,
        )
