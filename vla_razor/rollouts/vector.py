"""The training view of the env pool: a gymnasium-like vector env with same-step autoreset.

``PoolVectorEnv`` behaves as ``gymnasium.vector.AsyncVectorEnv(autoreset_mode=SAME_STEP)`` does for the
rollout collector (stacked observations, ``final_obs`` / ``final_info`` for episodes that just ended,
explicitly seeded resets), but its envs live in the command's pool: they are built once and shared with
in-training evaluation. Its envs are split into ``engine.groups`` groups by the engine's split rule
(:func:`~vla_razor.rollouts.splits.split_envs`), each stepped separately (``step_async(actions, group)`` /
``step_wait(group)``), so the collector can double-buffer.

A worker that dies takes its envs' episodes with it: each ends as truncated with ``sim_error`` set in
its final info (a failure, no reward) and a new, unseeded episode starts on the replacement worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vla_razor.errors import BadInputError
from vla_razor.rollouts.messages import AutoStep, Reset, Sent, Started, Stepped
from vla_razor.rollouts.observations import stack_obs
from vla_razor.rollouts.pool import EnvPool, WorkerDied, env_key
from vla_razor.rollouts.splits import split_envs


class PoolVectorEnv:
    """``num_envs`` envs of one kind (``env_kwargs``) spread over the pool's workers. With double
    buffering, each group is a range of the envs (group 0 the first ones), spread over every worker, so
    the workers step the other groups while the policy decodes one."""

    def __init__(
        self, pool: EnvPool, env_kwargs: Mapping[str, Any], num_envs: int, *, name: str = "train"
    ) -> None:
        if int(num_envs) < 1:
            raise BadInputError(f"num_envs={num_envs!r} must be >= 1")
        self.pool = pool
        self.num_envs = int(num_envs)
        self.env_kwargs = dict(env_kwargs)
        self.key = env_key(self.env_kwargs)
        self.slot_ids = [(name, i) for i in range(self.num_envs)]
        self.groups, self.workers = split_envs(self.num_envs, pool.num_workers, pool.settings.groups)
        # The collector decodes with this many torch threads (what the workers leave free).
        self.policy_threads = pool.settings.threads
        self._last_obs: list[dict[str, Any] | None] = [None] * self.num_envs
        self._lost: dict[int, Stepped] = {}  # results standing in for envs whose worker died

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]  # gymnasium's convention for one int
        else:
            seeds = [None if s is None else int(s) for s in seed]
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.num_envs} envs")
        self._lost.clear()
        for w in sorted(set(self.workers)):
            mine = [i for i in range(self.num_envs) if self.workers[i] == w]
            ops = [Reset(self.slot_ids[i], self.key, self.env_kwargs, seed=seeds[i]) for i in mine]
            try:
                results: list[Started] = self.pool.call(w, ops)
            except WorkerDied:  # already replaced: the fresh worker builds the envs and resets them
                results = self.pool.call(w, ops)
            for i, started in zip(mine, results, strict=True):
                self._last_obs[i] = started.obs
        return stack_obs(self._last_obs), {}  # type: ignore[arg-type]

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray, group: int | None = None) -> None:
        """Send the actions of ``group`` (one row per env of the group; all envs when None)."""
        envs = self._group(group)
        actions = np.asarray(actions, dtype=np.float32)
        if len(actions) != len(envs):
            raise ValueError(f"step_async got {len(actions)} actions for {len(envs)} envs")
        for w in sorted({self.workers[i] for i in envs}):
            mine = [j for j, i in enumerate(envs) if self.workers[i] == w and i not in self._lost]
            if not mine:
                continue
            ops = [AutoStep(self.slot_ids[envs[j]], actions[j]) for j in mine]
            try:
                self.pool.send(w, ops, tag=Sent(group, tuple(self.slot_ids[envs[j]] for j in mine)))
            except WorkerDied as died:
                self._recover(w, died.reason)

    def step_wait(self, group: int | None = None) -> tuple[Any, ...]:
        """Results of the envs of ``group``, in their order, stacked like a gymnasium vector env's."""
        envs = self._group(group)
        mine = {self.slot_ids[i]: i for i in envs}
        results: dict[int, Stepped] = {}
        for w in sorted({self.workers[i] for i in envs}):
            tag = self.pool.pending(w)
            # The oldest batch of this worker is ours only if it was sent for envs of this group.
            if isinstance(tag, Sent) and set(tag.slots) <= set(mine):
                try:
                    results.update(zip((mine[s] for s in tag.slots), self.pool.receive(w), strict=True))
                except WorkerDied as died:
                    self._recover(w, died.reason)
        for i in envs:
            if i not in results:
                results[i] = self._lost.pop(i)
            self._last_obs[i] = results[i].obs
        return _stack_steps([results[i] for i in envs])

    def close(self) -> None:
        """The envs stay in the pool (the command closes it), ready for its next user."""

    # ------------------------------------------------------------------ helpers
    def _group(self, group: int | None) -> list[int]:
        return list(range(self.num_envs)) if group is None else self.groups[group]

    def _recover(self, worker: int, reason: str) -> None:
        """Every env of a dead worker (whose results are lost) ends its episode as a truncated failure;
        new unseeded episodes start on the replacement, before anything else is sent to it."""
        envs = [i for i in range(self.num_envs) if self.workers[i] == worker]
        ops = [Reset(self.slot_ids[i], self.key, self.env_kwargs, seed=None) for i in envs]
        started: list[Started] = self.pool.call(worker, ops)
        for i, fresh in zip(envs, started, strict=True):
            final_info = {"is_success": False, "sim_error": f"env worker died: {reason}"}
            info = {"final_obs": self._last_obs[i], "final_info": final_info}
            self._lost[i] = Stepped(fresh.obs, reward=0.0, terminated=False, truncated=True, info=info)


def _stack_steps(results: list[Stepped]) -> tuple[Any, ...]:
    """Per-env step results -> gymnasium vector-env arrays and infos."""
    n = len(results)
    obs = stack_obs([r.obs for r in results])
    rewards = np.array([r.reward for r in results], dtype=np.float64)
    terminated = np.array([r.terminated for r in results], dtype=bool)
    truncated = np.array([r.truncated for r in results], dtype=bool)
    done = terminated | truncated
    info: dict[str, Any] = {
        "is_success": np.array([bool(r.info.get("is_success", False)) for r in results]),
        "_is_success": ~done,
    }
    if done.any():
        info["final_obs"] = np.full(n, None, dtype=object)
        info["final_info"] = np.full(n, None, dtype=object)
        for i in np.flatnonzero(done):
            info["final_obs"][i] = results[i].info["final_obs"]
            info["final_info"][i] = results[i].info["final_info"]
        info["_final_obs"] = done.copy()
        info["_final_info"] = done.copy()
    return obs, rewards, terminated, truncated, info
