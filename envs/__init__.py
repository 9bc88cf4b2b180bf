"""vla-razor's environment layer: robosuite manipulation tasks behind gymnasium.

Importing this package configures robosuite (private macros, quiet logs, headless GL) and registers
every built-in task under the ``vla_razor/`` gymnasium namespace; tasks defined in config files join
with :func:`register_task` (see :mod:`vla_razor.envs.task_config`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vla_razor.envs import _robosuite  # noqa: F401  (must run before any other robosuite import)
from vla_razor.envs.experts import Expert, make_expert
from vla_razor.envs.render_profiles import DEFAULT_RENDER_PROFILE, RENDER_PROFILES, RenderProfile
from vla_razor.envs.rendering import RenderingUnavailableError
from vla_razor.envs.robosuite_env import ACTION_DIM, PROPRIO_DIM, RobosuiteTaskEnv
from vla_razor.envs.task_config import TaskConfig, task_from_config
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ, TASKS, TaskSpec, get_task, register_task
from vla_razor.envs.vector import make_vector_env


def make_env(
    task: str,
    *,
    cameras: Sequence[str] | None = None,
    image_size: int = 64,
    fast_render: bool = True,
    use_camera: bool = True,
    horizon: int | None = None,
    control_freq: int | None = None,
    placement: dict[str, Any] | None = None,
    reward: str | None = None,
    render_camera: str | None = None,
    render_size: int | None = None,
    render_mode: str | None = None,
    fast_step: bool = True,
    render_profile: str = DEFAULT_RENDER_PROFILE,
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
        render_profile=render_profile,
    )


__all__ = [
    "ACTION_DIM",
    "DEFAULT_CONTROL_FREQ",
    "PROPRIO_DIM",
    "RENDER_PROFILES",
    "RenderProfile",
    "TASKS",
    "TaskConfig",
    "Expert",
    "RenderingUnavailableError",
    "RobosuiteTaskEnv",
    "TaskSpec",
    "get_task",
    "make_env",
    "make_expert",
    "make_vector_env",
    "register_task",
    "task_from_config",
]
