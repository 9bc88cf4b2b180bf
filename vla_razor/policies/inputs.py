"""Validation of what the envs hand the policy: one-line errors that name the offending value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def check_instructions(instructions: Sequence[str]) -> list[str]:
    if isinstance(instructions, str):
        raise ValueError(
            f"instructions must be a list of strings (one per env), got the string {instructions!r}"
        )
    out = list(instructions)
    for text in out:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"instruction {text!r} must be a non-empty string")
    return out


def get_image(
    obs: Mapping[str, np.ndarray], key: str, batch_size: int, size: int | None = None
) -> np.ndarray:
    """obs[key] as uint8 [B, H, W, 3]; ``size`` forces H == W == size."""
    if key not in obs:
        raise ValueError(f"observation lacks image key {key!r}; keys present: {sorted(obs)}")
    arr = np.asarray(obs[key])
    want = f"[{batch_size}, {size or 'H'}, {size or 'W'}, 3]"
    if arr.dtype != np.uint8:
        raise ValueError(f"image {key!r} has dtype {arr.dtype}; expected uint8 {want}")
    bad_shape = arr.ndim != 4 or arr.shape[0] != batch_size or arr.shape[-1] != 3
    if bad_shape or (size is not None and arr.shape[1:3] != (size, size)):
        raise ValueError(f"image {key!r} has shape {arr.shape}; expected uint8 {want}")
    return arr


def get_proprio(obs: Mapping[str, np.ndarray], batch_size: int, dim: int) -> np.ndarray:
    if "proprio" not in obs:
        raise ValueError(
            f"observation lacks 'proprio' (policy built with use_proprio=True); keys: {sorted(obs)}"
        )
    arr = np.asarray(obs["proprio"], dtype=np.float32)
    if arr.shape != (batch_size, dim):
        raise ValueError(f"proprio has shape {arr.shape}; expected [{batch_size}, {dim}]")
    return arr
