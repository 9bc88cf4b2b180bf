"""Simulator-free single envs for the engine's tests, built inside the pool's workers.

``make_fake_env(task=..., die_at_seed=...)`` is an env factory for :class:`vla_razor.rollouts.EnvPool`:
episodes are a pure function of (task, seed, actions), so schedules and batching can be checked in
milliseconds; ``die_at_seed`` makes the worker process exit abruptly (like a segfaulting simulator) on
the first step of that seed's episode.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

INSTRUCTIONS = {"lift": "lift the red cube", "reach": "grasp the red cube"}


class FakeTaskEnv:
    def __init__(self, task: str, image_size: int = 32, die_at_seed: int | None = None) -> None:
        if task not in INSTRUCTIONS:
            raise ValueError(f"unknown fake task {task!r}; valid: {', '.join(INSTRUCTIONS)}")
        self.task = task
        self.image_size = image_size
        self.die_at_seed = die_at_seed
        self.seed = 0
        self.t = 0
        self.unwrapped = self

    def _obs(self) -> dict[str, Any]:
        level = (self.seed * 7 + self.t * 13 + len(self.task)) % 256
        image = np.full((self.image_size, self.image_size, 3), level, dtype=np.uint8)
        return {
            "agentview_image": image,
            "proprio": np.full(9, self.t, dtype=np.float32),
            # A task-dependent width, as robosuite tasks have: a mixed batch cannot stack it.
            "object_state": np.zeros(3 if self.task == "lift" else 5, dtype=np.float32),
            "instruction": INSTRUCTIONS[self.task],
        }

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        self.seed = int(seed or 0)
        self.t = 0
        return self._obs(), {"is_success": False}

    def step(self, action: Any):
        if self.die_at_seed is not None and self.seed == self.die_at_seed:
            os._exit(3)  # what a segfaulting simulator looks like to the pool
        self.t += 1
        # The episode's length depends on the seed; success on the action the policy chose.
        horizon = 2 + self.seed % 3
        success = bool(np.asarray(action)[0] > 0.0) and self.t >= 2
        truncated = not success and self.t >= horizon
        return self._obs(), float(success), success, truncated, {"is_success": success}

    def render_frame(self) -> None:
        return None

    def close(self) -> None:
        pass


def make_fake_env(**kwargs: Any) -> FakeTaskEnv:
    return FakeTaskEnv(**kwargs)


def seed_and_task(env: FakeTaskEnv, seed: int) -> tuple[int, str]:
    """A whole 'episode' run inside a worker (dies there like the env would, at ``die_at_seed``)."""
    env.reset(seed=seed)
    env.step(np.zeros(7))
    return seed, env.task
