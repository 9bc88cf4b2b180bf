"""Shared fixtures for trainer tests: a small real demo file and a tiny policy config."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainers.tiny_policy import IMAGE_SIZE, tiny_policy_cfg
from vla_razor.data.demos import DemoRequest, collect_demos

__all__ = ["IMAGE_SIZE", "lift_demos", "tiny_policy_cfg"]


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real expert demos of `lift` (agentview 32x32), collected once per test session."""
    path = tmp_path_factory.mktemp("demos") / "lift.hdf5"
    request = DemoRequest(
        "lift",
        6,
        seed=0,
        valid_fraction=0.2,
        env_kwargs={"cameras": ("agentview",), "image_size": IMAGE_SIZE},
    )
    collect_demos(request, path, num_workers=1, progress=False)
    return path
