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
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError
from vla_razor.rollouts.observations import OBS_SKIP, final_info_value, final_obs, info_array, policy_batch
from vla_razor.rollouts.settings import policy_threads
from vla_razor.rollouts.splits import keep_in_flight


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
    # The observations the policy acted on, for the keys asked for (``collect(record=...)``): [T, N, ...].
    observations: dict[str, np.ndarray] = field(default_factory=dict)
    # [T, N] bool: the env executed the expert's action there, not the policy's (``expert_mix``).
    expert_executed: torch.Tensor | None = None
    episodes: list[EpisodeStats] = field(default_factory=list)
    env_seconds: float = 0.0
    policy_seconds: float = 0.0

    @property
    def num_steps(self) -> int:
        return int(self.rewards.numel())


@dataclass(frozen=True)
class _Outcome:
    """What the envs' results of one step of some envs mean for GAE (numpy, one row per env)."""

    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray  # only where not also terminated
    final_values: torch.Tensor  # V(final obs) where truncated, else 0
    success: np.ndarray  # the episode ended successfully at this step


@dataclass(frozen=True)
class _Part:
    """One time step of one group of envs, as the rollout stores it (the rows of a :class:`Rollout`)."""

    batch: Any
    observed: dict[str, np.ndarray]
    token_ids: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_values: torch.Tensor
    success: torch.Tensor
    expert_executed: torch.Tensor

    @classmethod
    def of(cls, sent: _Sent, outcome: _Outcome) -> _Part:
        out = sent.out
        return cls(
            batch=sent.batch,
            observed=sent.observed,
            expert_executed=sent.expert_executed,
            token_ids=out.token_ids.cpu(),
            log_probs=out.log_prob.float().cpu(),
            values=out.value.float().cpu(),
            rewards=torch.as_tensor(outcome.rewards),
            terminated=torch.as_tensor(outcome.terminated),
            truncated=torch.as_tensor(outcome.truncated),
            final_values=outcome.final_values,
            success=torch.as_tensor(outcome.success),
        )

    @classmethod
    def join(cls, parts: Sequence[_Part]) -> _Part:
        """The groups' parts of one time step -> the step of all envs, in env order."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            batch=type(parts[0].batch).cat([p.batch for p in parts]),
            observed={k: np.concatenate([p.observed[k] for p in parts]) for k in parts[0].observed},
            **{name: torch.cat([getattr(p, name) for p in parts]) for name in _TENSORS},
        )


# The tensor fields of a time step (each a field of Rollout too, of the same name).
_TENSORS = tuple(f.name for f in fields(_Part) if f.name not in ("batch", "observed"))


@dataclass(frozen=True)
class _Sent:
    """What was decided for one group at one step, kept until the envs' results land."""

    batch: Any
    out: Any
    observed: dict[str, np.ndarray]
    expert_executed: torch.Tensor


@dataclass(frozen=True)
class _How:
    """How a rollout decides: sampling temperature and stream, what it records, the expert's share."""

    temperature: float
    generator: torch.Generator | None
    record: tuple[str, ...]
    expert_mix: float


@dataclass
class _Clock:
    """Where a rollout's wall time went: waiting on the simulator, or deciding (and recording)."""

    env: float = 0.0
    policy: float = 0.0


class _LockStep:
    """A plain gymnasium-like vector env seen as one group: ``step_async`` keeps the actions and
    ``step_wait`` steps every env with them."""

    def __init__(self, venv: Any) -> None:
        self.venv = venv
        self.actions: np.ndarray | None = None

    def step_async(self, actions: np.ndarray, group: int) -> None:
        self.actions = actions

    def step_wait(self, group: int) -> tuple[Any, ...]:
        return self.venv.step(self.actions)


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
        record: Sequence[str] = (),
        expert_mix: float = 0.0,
    ) -> Rollout:
        """``num_steps`` steps of every env.

        ``record`` names observation keys to keep, as the policy saw them (DAgger keeps the images,
        proprio, instruction and ``expert_action``). ``expert_mix`` = beta executes, at each step and
        in each env independently with probability beta, the observation's ``expert_action`` instead of
        the policy's action (DAgger's mixture policy); the recorded tokens stay the policy's.

         A vector env split into groups (the engine's
        :class:`~vla_razor.rollouts.vector.PoolVectorEnv`) is double-buffered: the policy decodes one group
        while the others step. Either way the rollout holds the same data, env by env in the same order."""
        if self.obs is None:
            raise RuntimeError("RolloutCollector.reset(seeds) must be called before collect()")
        groups = getattr(self.venv, "groups", None)
        if groups is None:  # any gymnasium-like vector env: one group, stepped in lock-step
            venv, groups = _LockStep(self.venv), [list(range(self.num_envs))]
        else:
            venv, groups = self.venv, [list(g) for g in groups]
        if [i for g in groups for i in g] != list(range(self.num_envs)):
            raise ValueError(f"env groups must split the envs into ranges in order, got {groups}")
        clock = _Clock()
        with policy_threads(getattr(self.venv, "policy_threads", None)):
            how = _How(temperature, generator, tuple(record), float(expert_mix))
            steps, episodes = self._collect(policy, num_steps, venv, groups, clock, how)
            t0 = time.perf_counter()
            last_value = policy.value(policy_batch(policy, self.obs)).float().cpu()
            clock.policy += time.perf_counter() - t0

        def stack(name: str) -> torch.Tensor:
            return torch.stack([getattr(step, name) for step in steps])

        return Rollout(
            batches=[step.batch for step in steps],
            token_ids=stack("token_ids"),
            log_probs=stack("log_probs"),
            values=stack("values"),
            rewards=stack("rewards"),
            terminated=stack("terminated"),
            truncated=stack("truncated"),
            final_values=stack("final_values"),
            last_value=last_value,
            success=stack("success"),
            observations={k: np.stack([step.observed[k] for step in steps]) for k in record},
            expert_executed=stack("expert_executed"),
            episodes=episodes,
            env_seconds=clock.env,
            policy_seconds=clock.policy,
        )

    def _collect(
        self,
        policy: Any,
        num_steps: int,
        venv: Any,
        groups: list[list[int]],
        clock: _Clock,
        how: _How,
    ) -> tuple[list[_Part], list[EpisodeStats]]:
        """Every group in flight (:func:`.splits.keep_in_flight`): while one group's envs step, the policy
        decodes for the next. Decodes run in a fixed order (0, 1, .., 0, 1, ..) on a fixed split of the
        envs, so the rollout is a function of the seeds and the policy; with one group it is lock-step."""
        assert self.obs is not None
        obs = [self.obs] if len(groups) == 1 else [_take(self.obs, g) for g in groups]
        sent: dict[int, _Sent] = {}
        launched = [0] * len(groups)
        parts: list[list[_Part]] = [[] for _ in groups]
        episodes: list[EpisodeStats] = []

        def launch(g: int) -> None:
            if launched[g] == num_steps:  # the last round: nothing more to send
                return
            t0 = time.perf_counter()
            batch = self._last_batch = policy_batch(policy, obs[g])
            out = policy.act(batch, temperature=how.temperature, generator=how.generator)
            actions = np.asarray(out.actions, dtype=np.float32)
            expert = torch.zeros(len(actions), dtype=torch.bool)
            if how.expert_mix > 0:
                coin = torch.rand(len(actions), generator=how.generator, device=out.token_ids.device)
                expert = (coin < how.expert_mix).cpu()
                actions = np.where(expert.numpy()[:, None], _expert_actions(obs[g]), actions)
            t1 = time.perf_counter()
            venv.step_async(actions.astype(np.float32), group=g)
            observed = {k: np.array(obs[g][k]) for k in how.record if k in obs[g]}
            if len(observed) < len(how.record):
                raise BadInputError(
                    f"the observations lack {sorted(set(how.record) - set(observed))} to record (they have "
                    f"{sorted(obs[g])}); expert_action comes from envs built with expert_labels=true"
                )
            sent[g] = _Sent(batch, out, observed, expert)
            launched[g] += 1
            clock.policy += t1 - t0
            clock.env += time.perf_counter() - t1  # handing the actions to the simulator

        def land(g: int) -> None:
            t0 = time.perf_counter()
            next_obs, reward, terminated, truncated, info = venv.step_wait(group=g)
            t1 = time.perf_counter()
            outcome = self._record(policy, groups[g], reward, terminated, truncated, info, episodes)
            parts[g].append(_Part.of(sent.pop(g), outcome))
            obs[g] = next_obs
            clock.env += t1 - t0
            clock.policy += time.perf_counter() - t1

        keep_in_flight(len(groups), launch, land, lambda: len(parts[-1]) < num_steps)
        self.obs = obs[0] if len(groups) == 1 else _join_obs(obs)
        return [_Part.join(step) for step in zip(*parts, strict=True)], episodes

    def _record(
        self,
        policy: Any,
        envs: list[int],
        reward: Any,
        terminated: Any,
        truncated: Any,
        info: dict[str, Any],
        episodes: list[EpisodeStats],
    ) -> _Outcome:
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
        return _Outcome(
            rewards=r,
            terminated=terminated,
            truncated=truncated,
            final_values=final_v,
            success=success & (terminated | truncated),
        )


def _expert_actions(obs: dict[str, Any]) -> np.ndarray:
    if "expert_action" not in obs:
        raise BadInputError(
            "expert_mix > 0 needs envs built with expert_labels=true (no expert_action in obs)"
        )
    return np.asarray(obs["expert_action"])


def _take(obs: dict[str, Any], envs: list[int]) -> dict[str, Any]:
    return {k: [v[i] for i in envs] if k in OBS_SKIP else np.asarray(v)[envs] for k, v in obs.items()}


def _join_obs(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The groups' observations -> one vector-env observation dict, in env order."""
    first = parts[0]
    return {
        k: [x for p in parts for x in p[k]] if k in OBS_SKIP else np.concatenate([p[k] for p in parts])
        for k in first
    }
