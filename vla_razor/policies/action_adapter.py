"""Gripper conventions between a checkpoint's action space and robosuite's.

robosuite's Panda gripper takes -1 = open and +1 = close. OpenVLA checkpoints fine-tuned elsewhere use
other conventions; OpenVLA's LIBERO fine-tunes (robosuite Panda OSC_POSE policies) emit a gripper value
in [0, 1] with 1 = open, which OpenVLA's own LIBERO evaluation rescales to [-1, 1], binarises and
inverts. Running such a checkpoint here without that mapping closes the gripper when it means to open.

An adapter maps decoded actions (after unnormalisation) to env actions, and env actions (e.g. expert
demos for BC) back to the checkpoint's convention before tokenisation. The preset's name is saved with
the policy, so evaluation never has to guess it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_razor.errors import BadInputError


@dataclass(frozen=True)
class GripperAdapter:
    name: str
    description: str

    def to_env(self, actions: np.ndarray) -> np.ndarray:
        """Checkpoint-convention actions [B, 7] -> robosuite actions (gripper last)."""
        if self.name == "robosuite":
            return actions
        out = np.array(actions, dtype=np.float32, copy=True)
        # [0, 1] (1 = open) -> sign(2g - 1) in {-1, 0, 1} -> inverted: open = -1, close = +1.
        out[..., -1] = -np.sign(2.0 * out[..., -1] - 1.0)
        return out

    def from_env(self, actions: np.ndarray) -> np.ndarray:
        """robosuite actions [B, 7] -> the checkpoint's convention (BC targets)."""
        if self.name == "robosuite":
            return actions
        out = np.array(actions, dtype=np.float32, copy=True)
        out[..., -1] = np.clip((1.0 - out[..., -1]) / 2.0, 0.0, 1.0)  # -1 (open) -> 1, +1 (close) -> 0
        return out


ADAPTERS: dict[str, GripperAdapter] = {
    "robosuite": GripperAdapter("robosuite", "gripper in [-1, 1], -1 = open, +1 = close (no change)"),
    "openvla_libero": GripperAdapter(
        "openvla_libero",
        "gripper in [0, 1], 1 = open (OpenVLA's LIBERO fine-tunes); binarised and inverted on decode",
    ),
}


def get_adapter(name: str) -> GripperAdapter:
    if name not in ADAPTERS:
        valid = "; ".join(f"{k}: {a.description}" for k, a in ADAPTERS.items())
        raise BadInputError(f"unknown action_adapter {name!r}; valid: {valid}")
    return ADAPTERS[name]
