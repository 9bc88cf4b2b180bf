"""A tiny VLA config for tests and the GPU smoke script (no data, simulator or fixture imports)."""

from __future__ import annotations

IMAGE_SIZE = 32


def tiny_policy_cfg(**overrides: object) -> dict:
    cfg = {
        "family": "tiny",
        "image_keys": ["agentview_image"],
        "use_proprio": False,
        "image_size": IMAGE_SIZE,
        "vision_channels": [8, 16],
        "vision_grid": 2,
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 2,
        "num_kv_heads": 2,
        "intermediate_size": 128,
        "value_head_dims": [32],
        "extra_words": ["lift", "the", "red", "cube"],
        "finetune": "full",
        "seed": 0,
    }
    cfg.update(overrides)
    return cfg
