"""Tasks defined in config files: the ``define`` block of a ``configs/task/<name>.yaml`` becomes a TaskSpec.

A new task needs no edit inside the library: name a robosuite environment (a built-in one such as
``NutAssemblySquare``, or ``module.Class`` of your own), the objects its placement sampler places and
their ranges, the instruction, horizon, cameras and reward. Custom Python plugs in through hydra's
``_target_``: a success check or an object-state function (called with the robosuite env), and an
optional scripted expert class (needed only for demos). See ``configs/task/nut_assembly_square.yaml``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from vla_razor.envs import task_state
from vla_razor.envs.placement import merge_placement
from vla_razor.envs.robosuite_env import INSTRUCTION_CHARSET, REWARD_MODES, robosuite_env_name
from vla_razor.envs.tasks import TaskSpec, gym_id_for
from vla_razor.errors import BadInputError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_MAX_INSTRUCTION = 128  # the observation space's Text length


@dataclass
class TaskConfig:
    """Every key a task's ``define`` block may hold: the one typed source of their meaning and defaults."""

    robosuite_env: str
    """robosuite environment: a registered name (e.g. NutAssemblySquare) or module.Class of your own"""
    instruction: str
    """the language instruction the policy is given"""
    placement: dict[str, Any]
    """{sampler: robosuite placement sampler, x_range: [lo, hi], y_range: [lo, hi], rotation: null|a|[lo, hi]}"""
    horizon: int = 100
    """steps (at 10 Hz) before the episode is truncated"""
    objects: list[str] = field(default_factory=list)
    """robosuite objects the sampler keeps (others are dropped); their poses are the default object state"""
    cameras: list[str] = field(default_factory=lambda: ["agentview"])
    """cameras rendered when the caller names none (a policy always renders its own)"""
    reward: str = "binary"
    """binary (success) or shaped (robosuite's dense reward + success), when the caller names none"""
    success: Any = None
    """null: robosuite's own _check_success; or {_target_: module.function} called with the robosuite env"""
    object_state: Any = None
    """null: the poses of `objects`; or {_target_: module.function} called with the robosuite env"""
    object_state_dim: int | None = None
    """length of a custom object_state's vector"""
    expert: Any = None
    """null: no scripted expert (no demos); or {_target_: module.Class, ...kwargs} building a fresh one"""
    robosuite_kwargs: dict[str, Any] = field(default_factory=dict)
    """extra keyword arguments of the robosuite environment"""


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _function(name: str, key: str, value: Any) -> Callable[..., Any]:
    """A ``{_target_: module.function, **kwargs}`` node (or a dotted path) as a callable of the env."""
    try:
        if isinstance(value, str):
            return get_method(value)
        if isinstance(value, Mapping) and "_target_" in value:
            return instantiate(dict(value), _partial_=True)  # type: ignore[no-any-return]
    except (InstantiationException, ImportError, AttributeError, ValueError) as err:
        first = str(err).strip().splitlines()[0]
        raise BadInputError(f"task {name!r}: {key}={value!r} cannot be imported ({first})") from None
    raise BadInputError(f"task {name!r}: {key} must be null or {{_target_: module.function}}, got {value!r}")


def _expert_factory(name: str, value: Any) -> Callable[[], Any] | None:
    """A zero-argument factory of fresh experts (each env needs its own: an expert keeps its phase)."""
    if value is None:
        return None
    if not (isinstance(value, Mapping) and "_target_" in value):
        raise BadInputError(
            f"task {name!r}: expert must be null or {{_target_: module.Class}}, got {value!r}"
        )
    # functools.partial of a module-level function and a plain dict: it pickles into worker processes.
    factory = functools.partial(instantiate, dict(value))
    try:
        expert = factory()
    except InstantiationException as err:
        first = str(err).strip().splitlines()[0]
        raise BadInputError(
            f"task {name!r}: expert {value['_target_']!r} cannot be built ({first})"
        ) from None
    if not (callable(getattr(expert, "act", None)) and callable(getattr(expert, "reset", None))):
        raise BadInputError(f"task {name!r}: expert {value['_target_']!r} needs act(obs) and reset() methods")
    return factory


def task_from_config(name: str, define: Mapping[str, Any]) -> TaskSpec:
    """Validate a ``define`` block and build its TaskSpec (register it with ``envs.register_task``)."""
    values = _plain(define)
    if not isinstance(values, Mapping):
        raise BadInputError(f"task {name!r}: define must be a mapping of TaskConfig keys, got {values!r}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInputError(f"task name {name!r} must be snake_case (lower-case letters, digits, _)")
    keys = [f.name for f in fields(TaskConfig)]
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise BadInputError(
            f"task {name!r}: unknown key(s) {', '.join(unknown)} in define; valid: {', '.join(keys)}"
        )
    required = [f.name for f in fields(TaskConfig) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if values.get(k) is None]
    if missing:
        raise BadInputError(
            f"task {name!r}: define lacks {', '.join(missing)} (required: {', '.join(required)})"
        )
    c = TaskConfig(**values)
    robosuite_env_name(c.robosuite_env)  # an unknown environment fails here, with the valid names
    if (
        not c.instruction
        or len(c.instruction) > _MAX_INSTRUCTION
        or set(c.instruction) - set(INSTRUCTION_CHARSET)
    ):
        raise BadInputError(
            f"task {name!r}: instruction {c.instruction!r} must be 1-{_MAX_INSTRUCTION} letters, digits, spaces or .,'-"
        )
    if not isinstance(c.horizon, int) or c.horizon < 1:
        raise BadInputError(f"task {name!r}: horizon={c.horizon!r} must be an integer >= 1")
    if c.reward not in REWARD_MODES:
        raise BadInputError(f"task {name!r}: reward={c.reward!r}; valid: {', '.join(REWARD_MODES)}")
    placement = dict(c.placement)
    sampler = placement.pop("sampler", None)
    if not sampler:
        raise BadInputError(
            f"task {name!r}: placement needs `sampler` (the robosuite placement sampler its ranges apply to)"
        )
    if c.object_state is None:
        if not c.objects:
            raise BadInputError(
                f"task {name!r}: give `objects` (their poses are the object state) or `object_state`"
            )
        object_state: Callable[[Any], Any] = functools.partial(
            task_state.object_poses, names=tuple(c.objects)
        )
        dim = 7 * len(c.objects)
    else:
        object_state = _function(name, "object_state", c.object_state)
        if not isinstance(c.object_state_dim, int) or c.object_state_dim < 1:
            raise BadInputError(f"task {name!r}: a custom object_state needs object_state_dim (its length)")
        dim = c.object_state_dim
    success = task_state.robosuite_success if c.success is None else _function(name, "success", c.success)
    missing_ranges = [k for k in ("x_range", "y_range") if k not in placement]
    if missing_ranges:
        raise BadInputError(f"task {name!r}: placement lacks {', '.join(missing_ranges)}")
    return TaskSpec(
        name=name,
        gym_id=gym_id_for(name),
        instruction=c.instruction,
        robosuite_env=c.robosuite_env,
        horizon=c.horizon,
        expert=_expert_factory(name, c.expert),
        # Checked as a user's override would be (same messages); no rotation given: any angle.
        default_placement=merge_placement({"rotation": None}, placement),
        sampler_name=str(sampler),
        object_state=object_state,
        success=success,
        object_state_dim=dim,
        family=name,
        robosuite_kwargs=dict(c.robosuite_kwargs),
        objects=tuple(c.objects),
        default_cameras=tuple(c.cameras),
        default_reward=c.reward,
        source=json.dumps(values, sort_keys=True, default=str),
    )
