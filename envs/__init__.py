"""vla-razor's environment layer: robosuite manipulation tasks behind gymnasium.

Importing this package configures robosuite (private macros, quiet logs, headless GL) and registers
every task under the ``vla_razor/`` gymnasium namespace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from vla_razor.envs import _robosuite  # noqa: F401  (must run before any other robosuite import)
from vla_razor.envs.experts import Expert, make_expert
from vla_razor.envs.rendering import RenderingUnavailableError
from vla_razor.envs.robosuite_env import ACTION_DIM, PROPRIO_DIM, RobosuiteTaskEnv
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ, TASKS, TaskSpec, get_task
from vla_razor.envs.vector import make_vector_env


def make_env(
    task: str,
    *,
    cameras: Sequence[str] = ("agentview",),
    image_size: int = 64,
    fast_render: bool = True,
    use_camera: bool = True,
    horizon: int | None = None,
    control_freq: int | None = None,
    placement: dict[str, Any] | None = None,
    reward: str = "binary",
    render_camera: str | None = None,
    render_size: int | None = None,
    render_mode: str | None = None,
    fast_step: bool = True,
) -> RobosuiteTaskEnv:
    """Build one task environment (see :class:`RobosuiteTaskEnv` and the table in :mod:`vla_razor.envs.tasks`)."""
    return RobosuiteTaskEnv(
        task,
        cameras=cameras,
        image_size=image_size,
        fast_render=fast_render,
        use_camera=use_camera,
        horizon=horizon,
        control_freq=control_freq,
        placement=placement,
        reward=reward,
        render_camera=render_camera,
        render_size=render_size,
        render_mode=render_mode,
        fast_step=fast_step,
    )


def _register_all() -> None:
    for spec in TASKS.values():
        if spec.gym_id not in gym.registry:
            # No max_episode_steps: the env truncates at its own horizon (TimeLimit would double it up).
            gym.register(
                id=spec.gym_id,
                entry_point="vla_razor.envs.robosuite_env:RobosuiteTaskEnv",
                kwargs={"task": spec.name},
            )


_register_all()

__all__ = [
    "ACTION_DIM",
    "DEFAULT_CONTROL_FREQ",
    "PROPRIO_DIM",
    "TASKS",
    "Expert",
    "RenderingUnavailableError",
    "RobosuiteTaskEnv",
    "TaskSpec",
    "get_task",
    "make_env",
    "make_expert",
    "make_vector_env",
]
