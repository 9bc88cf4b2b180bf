"""The rollout collector: where a vectorised environment meets a batched VLA policy.

Two ways to drive the envs:
- :func:`collect_rollout` for on-policy training (PPO, RFT): a fixed number of steps in every env with
  gymnasium's same-step autoreset; it records what GAE needs, including V(final observation) of episodes
  cut by the time limit, so truncation is bootstrapped and termination is not.
- :func:`evaluate_seeds` for evaluation: each env runs explicitly seeded episodes (reset with a mask as
  soon as one finishes) until every requested seed has been played; results come back in seed order.
Both time the simulator and the policy separately, so the trainers can report where wall time goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError

OBS_SKIP = ("instruction",)


def policy_batch(policy: Any, obs: dict[str, Any]) -> Any:
    """Vector-env observation dict -> the policy's batch (the policy picks the keys it needs)."""
    instructions = [str(s) for s in obs["instruction"]]
    arrays = {k: np.asarray(v) for k, v in obs.items() if k not in OBS_SKIP}
    return policy.prepare(arrays, instructions)


def _stack_obs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    keys = items[0].keys()
    return {k: [it[k] for it in items] if k in OBS_SKIP else np.stack([it[k] for it in items]) for k in keys}


def _final_obs(info: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    """The last observations of episodes that just ended (gymnasium puts them in info['final_obs'])."""
    final = info["final_obs"]
    return _stack_obs([final[i] for i in index])


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

    def __init__(
        self, venv: Any, reward: str = "binary", lockstep: Callable[[bool], bool] | None = None
    ) -> None:
        """``lockstep(needed)`` says whether any rank needs a data-dependent extra policy pass (FSDP:
        such passes are collectives, so every rank must take part); None for one process or DDP."""
        if reward not in {"binary", "shaped"}:
            raise BadInputError(f"reward must be 'binary' or 'shaped', got {reward!r}")
        self.venv = venv
        self.reward = reward
        self.lockstep: Callable[[bool], bool] = lockstep or (lambda needed: needed)
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
            success = _info_array(info, "is_success", self.num_envs, terminated | truncated)
            r = (
                success.astype(np.float32)
                if self.reward == "binary"
                else np.asarray(reward, dtype=np.float32)
            )
            final_v = torch.zeros(self.num_envs)
            if self.lockstep(bool(truncated.any())):
                if truncated.any():
                    idx = np.flatnonzero(truncated)
                    final_v[idx] = policy.value(policy_batch(policy, _final_obs(info, idx))).float().cpu()
                else:  # another rank needs the pass: take part in its collectives, discard the values
                    policy.value(batch)
            t3 = time.perf_counter()
            self.ep_len += 1
            self.ep_ret += r
            for i in np.flatnonzero(terminated | truncated):
                err = _final_info_value(info, i, "sim_error")
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


def _info_array(info: dict[str, Any], key: str, n: int, ended: np.ndarray) -> np.ndarray:
    """A per-env boolean from a vector info dict; for envs that just ended read it from final_info."""
    out = np.zeros(n, dtype=bool)
    if key in info:
        mask = info.get(f"_{key}", np.ones(n, dtype=bool))
        out[mask] = np.asarray(info[key])[mask].astype(bool)
    for i in np.flatnonzero(ended):
        value = _final_info_value(info, i, key)
        if value is not None:
            out[i] = bool(value)
    return out


def _final_info_value(info: dict[str, Any], i: int, key: str) -> Any:
    final = info.get("final_info")
    if final is None:
        return None
    if isinstance(final, dict):  # gymnasium 1.x: a dict of arrays with `_key` masks
        if key in final and final.get(f"_{key}", np.ones(len(final[key]), dtype=bool))[i]:
            return final[key][i]
        return None
    item = final[i]
    return item.get(key) if isinstance(item, dict) else None


@dataclass
class SeededEpisode:
    seed: int
    success: bool
    length: int
    sim_error: str | None = None


@torch.no_grad()
def evaluate_seeds(
    policy: Any,
    venv: Any,
    seeds: Sequence[int],
    *,
    greedy: bool = True,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    keep_observations: bool = False,
    progress: Any = None,
    on_episode: Callable[[SeededEpisode], None] | None = None,
    record_seeds: Sequence[int] = (),
    frames: dict[int, list[np.ndarray]] | None = None,
    frame_key: str | None = None,
) -> tuple[list[SeededEpisode], list[dict[str, Any]]]:
    """Play one episode per seed (the vector env must use autoreset_mode=DISABLED).

    Returns the episodes in seed order and, with ``keep_observations``, every observation the policy saw
    (single-env dicts, in order), e.g. to build a fixed set of new-task states for KL measurements.
    ``on_episode`` is called as each episode finishes (append-only result files); for seeds in
    ``record_seeds`` the ``frame_key`` image of every step is appended to ``frames[seed]`` (videos).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        return [], []
    n = int(venv.num_envs)
    pending = list(range(len(seeds)))
    slot_job: list[int | None] = [None] * n
    results: dict[int, SeededEpisode] = {}
    lengths = np.zeros(n, dtype=np.int64)
    observations: list[dict[str, Any]] = []

    def reset(mask: np.ndarray) -> dict[str, Any]:
        seed_list: list[int | None] = []
        for i in range(n):
            if mask[i]:
                slot_job[i] = pending.pop(0) if pending else None
                seed_list.append(seeds[slot_job[i]] if slot_job[i] is not None else None)
            else:
                seed_list.append(None)
        lengths[mask] = 0
        obs, _ = venv.reset(seed=seed_list, options={"reset_mask": mask.copy()})
        return obs

    record = set(int(s) for s in record_seeds) if frames is not None and frame_key else set()

    def grab(obs: dict[str, Any]) -> None:
        for i in range(n):
            job = slot_job[i]
            if job is not None and seeds[job] in record:
                frames.setdefault(seeds[job], []).append(np.asarray(obs[frame_key][i]).copy())  # type: ignore[union-attr]

    obs = reset(np.ones(n, dtype=bool))
    while any(j is not None for j in slot_job):
        if record:
            grab(obs)
        batch = policy_batch(policy, obs)
        if keep_observations:
            for i in range(n):
                if slot_job[i] is not None:
                    observations.append(
                        {k: (v[i] if k in OBS_SKIP else np.asarray(v[i]).copy()) for k, v in obs.items()}
                    )
        out = policy.act(batch, greedy=greedy, temperature=temperature, generator=generator)
        obs, _, terminated, truncated, info = venv.step(np.asarray(out.actions, dtype=np.float32))
        lengths += 1
        ended = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        if not ended.any():
            continue
        success = _info_array(info, "is_success", n, np.zeros(n, dtype=bool))
        sim_error = info.get("sim_error")
        if record:
            for i in np.flatnonzero(ended):  # the last frame of a finished episode, before its reset
                job = slot_job[i]
                if job is not None and seeds[job] in record:
                    frames[seeds[job]].append(np.asarray(obs[frame_key][i]).copy())  # type: ignore[index]
        for i in np.flatnonzero(ended):
            job = slot_job[i]
            if job is not None:
                err = (
                    sim_error[i]
                    if sim_error is not None and info.get("_sim_error", np.ones(n, bool))[i]
                    else None
                )
                results[job] = SeededEpisode(seeds[job], bool(success[i]), int(lengths[i]), err or None)
                if progress is not None:
                    progress.update(1)
                if on_episode is not None:
                    on_episode(results[job])
        obs = reset(ended)
    return [results[j] for j in range(len(seeds))], observations
