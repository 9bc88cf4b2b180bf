"""Observation plumbing shared by every rollout path: vector-env dicts <-> policy batches, info lookups."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Observation keys that are not arrays (they stay lists of strings when observations are stacked).
OBS_SKIP = ("instruction",)


def policy_env_kwargs(policy: Any) -> dict[str, Any]:
    """Env kwargs whose cameras, image size and render profile are exactly what ``policy`` consumes."""
    keys = [k for k in policy.settings.image_keys if k.endswith("_image")]
    return {
        "cameras": tuple(k[: -len("_image")] for k in keys),
        "image_size": int(policy.settings.image_size),
        "render_profile": str(policy.settings.render_profile),
    }


def evaluate_under_profile(policy: Any, render_profile: str | None) -> Any:
    """Make ``policy``'s envs render with ``render_profile`` instead of the profile it was trained on.

    Only for a deliberate comparison (``vla-razor eval render_profile=...``): the policy then sees images
    unlike its training data. ``None`` leaves the policy as it is. The policy object is changed in place
    and returned; evaluation never saves it, so the checkpoint on disk keeps its own profile.
    """
    if render_profile is not None and render_profile != policy.settings.render_profile:
        log.warning(
            "evaluating a policy trained on render_profile=%r under %r, as asked",
            policy.settings.render_profile,
            render_profile,
        )
        policy.settings.render_profile = str(render_profile)
    return policy


def policy_batch(policy: Any, obs: dict[str, Any]) -> Any:
    """Vector-env observation dict -> the policy's batch (the policy picks the keys it needs).

    Each row carries its own instruction, so one batch may hold episodes of several tasks.
    """
    instructions = [str(s) for s in obs["instruction"]]
    arrays = {k: np.asarray(v) for k, v in obs.items() if k not in OBS_SKIP}
    return policy.prepare(arrays, instructions)


def stack_obs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Single-env observations -> one vector-env observation dict (instructions stay a list).

    In a batch that mixes tasks, a key whose shape differs between tasks (``object_state``: each task
    has its own objects) cannot be stacked and is left out; policies read cameras, proprio and the
    instruction, which every task shares.
    """
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key in OBS_SKIP:
            out[key] = values
        elif len({np.shape(v) for v in values}) == 1:
            out[key] = np.stack(values)
    return out


def copy_obs(obs: dict[str, Any]) -> dict[str, Any]:
    """A single-env observation detached from any buffer it came from."""
    return {k: (v if k in OBS_SKIP else np.asarray(v).copy()) for k, v in obs.items()}


def final_obs(info: dict[str, Any], index: np.ndarray) -> dict[str, Any]:
    """The last observations of episodes that just ended (gymnasium puts them in info['final_obs'])."""
    final = info["final_obs"]
    return stack_obs([final[i] for i in index])


def info_array(info: dict[str, Any], key: str, n: int, ended: np.ndarray) -> np.ndarray:
    """A per-env boolean from a vector info dict; for envs that just ended read it from final_info."""
    out = np.zeros(n, dtype=bool)
    if key in info:
        mask = info.get(f"_{key}", np.ones(n, dtype=bool))
        out[mask] = np.asarray(info[key])[mask].astype(bool)
    for i in np.flatnonzero(ended):
        value = final_info_value(info, i, key)
        if value is not None:
            out[i] = bool(value)
    return out


def final_info_value(info: dict[str, Any], i: int, key: str) -> Any:
    """``info['final_info'][key]`` of env ``i`` (gymnasium 1.x dict-of-arrays or a list of dicts)."""
    final = info.get("final_info")
    if final is None:
        return None
    if isinstance(final, dict):  # gymnasium 1.x: a dict of arrays with `_key` masks
        if key in final and final.get(f"_{key}", np.ones(len(final[key]), dtype=bool))[i]:
            return final[key][i]
        return None
    item = final[i]
    return item.get(key) if isinstance(item, dict) else None
