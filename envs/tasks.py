"""The task table: one row per built-in task, everything else reads from here (tasks defined in config
files join it at run time through :func:`register_task`).

Default placement ranges (``placement`` argument of :func:`envs.make_env`; metres relative to the
sampler's reference point, rotation in radians about z; ``None`` rotation = any angle):

| task | robosuite env | reference point | x_range | y_range | rotation | horizon (10 Hz) |
|---|---|---|---|---|---|---|
| pick_place_{can,bread,milk,cereal} | PickPlace{Obj} | centre of the source bin (0.1, -0.25) | (-0.08, 0.08) | (-0.10, 0.10) | (-pi/8, pi/8) | 100 |
| grasp_lift_{can,bread,milk,cereal} | PickPlace{Obj} | centre of the source bin (0.1, -0.25) | (-0.08, 0.08) | (-0.10, 0.10) | (-pi/8, pi/8) | 50 |
| lift | Lift | table centre | (-0.03, 0.03) | (-0.03, 0.03) | None | 50 |
| stack | Stack | table centre | (-0.08, 0.08) | (-0.08, 0.08) | None | 100 |
| door | Door (no latch) | table centre | (0.07, 0.09) | (-0.01, 0.01) | (-pi/2-0.25, -pi/2) | 80 |
| nut_assembly_round | NutAssemblyRound | table centre | (-0.115, -0.11) | (-0.225, -0.11) | None | 100 |

The pick-and-place ranges are narrower than robosuite's whole-bin default, a deliberate lever to keep
the new tasks learnable by small policies on a CPU; pass ``placement={...}`` to widen them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from vla_razor.envs import task_state
from vla_razor.errors import BadInputError

# One control frequency for every task: an expert finishes a pick-and-place in well under 100 steps.
DEFAULT_CONTROL_FREQ = 10

Placement = dict[str, Any]


@dataclass(frozen=True)
class TaskSpec:
    """Everything needed to build, solve and describe one task.

    Built-in tasks are the rows below; a config file can define more (:mod:`vla_razor.envs.task_config`),
    registered at run time with :func:`register_task`. Callables are compared by nothing: two specs are
    the same task when their data (and, for config tasks, their source definition) are equal.
    """

    name: str
    gym_id: str
    instruction: str
    robosuite_env: str  # a robosuite environment name, or module.Class for a user's own robosuite env
    horizon: int
    # A key into vla_razor.envs.experts.EXPERT_FACTORIES (keeps this module free of expert code), a
    # zero-argument factory of fresh experts (tasks defined in configs), or None: no scripted expert.
    expert: str | Callable[[], Any] | None = field(compare=False)
    default_placement: Placement
    sampler_name: str  # which robosuite placement sampler the placement ranges apply to
    object_state: Callable[[Any], np.ndarray] = field(compare=False)
    success: Callable[[Any], bool] = field(compare=False)
    object_state_dim: int
    family: str
    robosuite_kwargs: dict[str, Any] = field(default_factory=dict)
    # The robosuite objects the placement sampler keeps; the others are dropped from it (single-object
    # scenes place only the active one). Empty: the sampler places all of its objects.
    objects: tuple[str, ...] = ()
    default_cameras: tuple[str, ...] = ("agentview",)  # when the caller names no cameras
    default_reward: str = "binary"  # binary | shaped, when the caller names none
    source: str | None = None  # the JSON definition a task from a config file was built from


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def gym_id_for(name: str) -> str:
    return f"vla_razor/{_camel(name)}-v0"


_PICK_PLACE_PLACEMENT: Placement = {
    "x_range": (-0.08, 0.08),
    "y_range": (-0.10, 0.10),
    "rotation": (-math.pi / 8, math.pi / 8),
}


def _pick_place_tasks() -> list[TaskSpec]:
    specs = []
    for obj in ("can", "bread", "milk", "cereal"):
        env_name = f"PickPlace{obj.capitalize()}"
        for family, horizon, instruction, success in (
            ("pick_place", 100, f"put the {obj} in the bin", task_state.pick_place_success),
            ("grasp_lift", 50, f"grasp and lift the {obj}", task_state.grasp_lift_success),
        ):
            name = f"{family}_{obj}"
            specs.append(
                TaskSpec(
                    name=name,
                    gym_id=gym_id_for(name),
                    instruction=instruction,
                    robosuite_env=env_name,
                    horizon=horizon,
                    expert=family,
                    default_placement=dict(_PICK_PLACE_PLACEMENT),
                    sampler_name="CollisionObjectSampler",
                    object_state=task_state.pick_place_state,
                    success=success,
                    object_state_dim=10,
                    family=family,
                    objects=(obj.capitalize(),),
                )
            )
    return specs


def _robosuite_task(name: str, family: str, **row: Any) -> TaskSpec:
    """A prior-skill task on robosuite's own environment of the same (camel-cased) name: solved by its
    family's expert and judged by robosuite's own success check. ``row`` holds the task's own values."""
    return TaskSpec(
        name=name,
        gym_id=gym_id_for(name),
        robosuite_env=_camel(name),
        expert=family,
        family=family,
        success=task_state.robosuite_success,
        **{"sampler_name": "ObjectSampler", **row},
    )


def _prior_tasks() -> list[TaskSpec]:
    return [
        _robosuite_task(
            "lift",
            "lift",
            instruction="lift the red cube",
            horizon=50,
            default_placement={"x_range": (-0.03, 0.03), "y_range": (-0.03, 0.03), "rotation": None},
            object_state=task_state.lift_state,
            object_state_dim=7,
        ),
        _robosuite_task(
            "stack",
            "stack",
            instruction="stack the red cube on the green cube",
            horizon=100,
            default_placement={"x_range": (-0.08, 0.08), "y_range": (-0.08, 0.08), "rotation": None},
            object_state=task_state.stack_state,
            object_state_dim=14,
        ),
        _robosuite_task(
            "door",
            "door",
            instruction="open the door",
            horizon=80,
            default_placement={
                "x_range": (0.07, 0.09),
                "y_range": (-0.01, 0.01),
                "rotation": (-math.pi / 2 - 0.25, -math.pi / 2),
            },
            object_state=task_state.door_state,
            object_state_dim=10,
            # A spring latch needs a handle turn first: a second skill we do not need for forgetting studies.
            robosuite_kwargs={"use_latch": False},
        ),
        _robosuite_task(
            "nut_assembly_round",
            "nut_assembly",
            instruction="put the round nut on the round peg",
            # The expert needs 45-76 steps (grasp, lift, turn and carry, lower onto the peg).
            horizon=100,
            # robosuite's own ranges for the round nut (the strip of table in front of its peg's row).
            default_placement={"x_range": (-0.115, -0.11), "y_range": (-0.225, -0.11), "rotation": None},
            sampler_name="RoundNutSampler",
            object_state=task_state.nut_assembly_state,
            object_state_dim=13,
        ),
    ]


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (*_pick_place_tasks(), *_prior_tasks())}
BUILTIN_TASKS = frozenset(TASKS)


def _register_gym(spec: TaskSpec) -> None:
    if spec.gym_id not in gym.registry:
        # No max_episode_steps: the env truncates at its own horizon (TimeLimit would double it up).
        gym.register(
            id=spec.gym_id,
            entry_point="vla_razor.envs.robosuite_env:RobosuiteTaskEnv",
            kwargs={"task": spec.name},
        )


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to TASKS and to gymnasium's registry (``vla_razor/<CamelName>-v0``).

    Registering the same definition again is a no-op (worker processes re-register what their parent
    sent them); another task under a taken name is an error.
    """
    existing = TASKS.get(spec.name)
    if existing is not None:
        if existing == spec:
            return existing
        where = "a built-in task" if spec.name in BUILTIN_TASKS else "already defined differently"
        raise BadInputError(f"task name {spec.name!r} is {where}; give the new task another name")
    TASKS[spec.name] = spec
    _register_gym(spec)
    return spec


def get_task(name: str) -> TaskSpec:
    """Look a task up by name, with an error that lists the valid names."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise BadInputError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}") from None


for _spec in TASKS.values():
    _register_gym(_spec)
