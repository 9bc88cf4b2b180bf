"""Shared fixtures for trainer tests: a small real demo file and a tiny policy config."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_razor.data.demos import collect_demos

IMAGE_SIZE = 32


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real expert demos of `lift` (agentview 32x32), collected once per test session."""
    path = tmp_path_factory.mktemp("demos") / "lift.hdf5"
    collect_demos(
        "lift",
        6,
        path,
        seed=0,
        num_workers=1,
        valid_fraction=0.2,
        progress=False,
        env_kwargs={"cameras": ("agentview",), "image_size": IMAGE_SIZE},
    )
    return path


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
