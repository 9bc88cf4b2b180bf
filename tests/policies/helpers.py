"""Small tiny-VLA builders (a fraction of the default size) so every test runs in seconds on CPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_razor.policies import VLAPolicy, build_policy

SMALL: dict[str, Any] = {
    "family": "tiny",
    "image_keys": ["agentview_image"],
    "use_proprio": False,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "vision_channels": [16, 32],
    "vision_grid": 2,
    "value_head_dims": [32, 16],
    "image_size": 32,
}

INSTRUCTIONS = ["pick up the can", "lift the red cube and place it in the bin", "open the door"]


def make_policy(**overrides: Any) -> VLAPolicy:
    torch.manual_seed(0)
    return build_policy({**SMALL, **overrides})


def make_obs(batch: int, size: int = 32, seed: int = 0, keys: tuple[str, ...] = ("agentview_image",)) -> dict:
    rng = np.random.default_rng(seed)
    obs = {k: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8) for k in keys}
    obs["proprio"] = rng.normal(size=(batch, 9)).astype(np.float32)
    return obs
