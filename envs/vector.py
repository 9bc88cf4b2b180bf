"""Vectorised environments. Worker processes start with forkserver (or spawn), never fork:
a forked child inherits the parent's GL context and hangs on its first render."""

from __future__ import annotations

import functools
import multiprocessing as mp
from typing import Any

import gymnasium as gym

from vla_razor.envs.robosuite_env import RobosuiteTaskEnv
from vla_razor.envs.tasks import TaskSpec, get_task, register_task
from vla_razor.errors import BadInputError

_CONTEXTS = ("forkserver", "spawn")


def _build(spec: TaskSpec, kwargs: dict[str, Any]) -> RobosuiteTaskEnv:
    # Workers get the whole spec, not only its name: a task defined in a config file at run time exists
    # only in the parent's registry until it is registered here too.
    register_task(spec)
    return RobosuiteTaskEnv(spec.name, **kwargs)


def make_vector_env(
    task: str,
    num_envs: int,
    *,
    asynchronous: bool = True,
    context: str | None = None,
    vector_kwargs: dict[str, Any] | None = None,
    **make_env_kwargs: Any,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``task`` in an AsyncVectorEnv (or SyncVectorEnv if not asynchronous).

    ``context`` defaults to forkserver where the platform has it, else spawn. ``vector_kwargs`` go to
    the gymnasium vector env (e.g. ``autoreset_mode``).
    """
    spec = get_task(task)  # fail fast in the parent with the list of valid names
    if int(num_envs) < 1:
        raise BadInputError(f"num_envs={num_envs!r} must be >= 1")
    fns = [functools.partial(_build, spec, dict(make_env_kwargs)) for _ in range(int(num_envs))]
    # gymnasium's shared-memory path mangles Text spaces (the instruction comes back as padding), so
    # observations travel through the pipes; at policy-sized images the copy is cheap next to a render.
    extra = {"shared_memory": False, **(vector_kwargs or {})} if asynchronous else dict(vector_kwargs or {})
    if not asynchronous:
        return gym.vector.SyncVectorEnv(fns, **extra)
    if context is None:
        context = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if context not in _CONTEXTS:
        raise BadInputError(
            f"unknown multiprocessing context {context!r}; valid: {', '.join(_CONTEXTS)} (fork hangs with GL)"
        )
    return gym.vector.AsyncVectorEnv(fns, context=context, **extra)
