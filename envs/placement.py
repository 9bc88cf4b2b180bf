"""Apply user placement ranges to a robosuite placement sampler, validating them first."""

from __future__ import annotations

import math
from typing import Any

from vla_razor.envs.tasks import Placement, TaskSpec
from vla_razor.errors import BadInputError

_KEYS = ("x_range", "y_range", "rotation")


def resolve_placement(spec: TaskSpec, placement: Placement | None) -> Placement:
    """Merge user overrides into the task defaults; return JSON-friendly lists."""
    return merge_placement(spec.default_placement, placement)


def merge_placement(defaults: Placement, placement: Placement | None) -> Placement:
    """``defaults`` updated with ``placement``, validated: x/y ranges low <= high, rotation None/angle/range."""
    merged = dict(defaults)
    for key, value in (placement or {}).items():
        if key not in _KEYS:
            raise BadInputError(f"unknown placement key {key!r}; valid keys: {', '.join(_KEYS)}")
        merged[key] = value
    out: Placement = {}
    for key in ("x_range", "y_range"):
        lo, hi = (float(v) for v in merged[key])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise BadInputError(
                f"placement {key}={merged[key]!r} must be two finite numbers with low <= high"
            )
        out[key] = [lo, hi]
    rot = merged["rotation"]
    if rot is None or isinstance(rot, int | float):
        out["rotation"] = None if rot is None else float(rot)
    else:
        lo, hi = (float(v) for v in rot)
        if lo > hi:
            raise BadInputError(f"placement rotation={rot!r} must have low <= high")
        out["rotation"] = [lo, hi]
    return out


def _find_sampler(rs: Any, name: str) -> Any:
    initializer = rs.placement_initializer
    if getattr(initializer, "name", None) == name:
        return initializer
    samplers = getattr(initializer, "samplers", {})
    if name not in samplers:
        valid = [getattr(initializer, "name", None), *samplers]
        raise BadInputError(
            f"placement sampler {name!r} not found in {type(rs).__name__}; valid samplers: "
            + ", ".join(str(v) for v in valid if v)
        )
    return samplers[name]


def apply_placement(rs: Any, spec: TaskSpec, placement: Placement) -> None:
    """Set the sampler's ranges in place; robosuite keeps the sampler across soft resets."""
    sampler = _find_sampler(rs, spec.sampler_name)
    sampler.x_range = list(placement["x_range"])
    sampler.y_range = list(placement["y_range"])
    rot = placement["rotation"]
    sampler.rotation = tuple(rot) if isinstance(rot, list) else rot
    # Our ranges are for the object's centre; robosuite would otherwise shrink them by the object's
    # radius (and fail on ranges narrower than the object).
    sampler.ensure_object_boundary_in_range = False
    if spec.objects:
        # Single-object scenes hide the other objects after sampling anyway; dropping them from the
        # sampler keeps narrow ranges feasible and the active object's distribution exactly uniform.
        sampler.mujoco_objects = [o for o in sampler.mujoco_objects if o.name in spec.objects]
