"""vla-razor's environment layer: robosuite manipulation tasks behind gymnasium.

Importing this package configures robosuite (private macros, quiet logs, headless GL) and registers
every built-in task under the ``vla_razor/`` gymnasium namespace; tasks defined in config files join
with :func:`register_task` (see :mod:`vla_razor.envs.task_config`).
"""

from __future__ import annotations

from typing import Any

from vla_razor.envs import _robosuite  # noqa: F401  (must run before any other robosuite import)
from vla_razor.envs.experts import Expert, make_expert
from vla_razor.envs.render_profiles import RENDER_PROFILES, RenderProfile
from vla_razor.envs.rendering import RenderingUnavailableError
from vla_razor.envs.robosuite_env import ACTION_DIM, PROPRIO_DIM, RobosuiteTaskEnv
from vla_razor.envs.task_config import TaskConfig, task_from_config
from vla_razor.envs.tasks import DEFAULT_CONTROL_FREQ, TASKS, TaskSpec, get_task, register_task
from vla_razor.envs.vector import make_vector_env


def make_env(task: str, **options: Any) -> RobosuiteTaskEnv:
    """Build one task environment: ``RobosuiteTaskEnv(task, **options)``.

    The options are the env's keyword-only parameters (cameras, image_size, horizon, render_profile, ...;
    see :class:`RobosuiteTaskEnv` and the table in :mod:`vla_razor.envs.tasks`). They are forwarded, not
    repeated here, so the env's signature is their one home and an unknown option fails as it does there.
    """
    return RobosuiteTaskEnv(task, **options)


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
