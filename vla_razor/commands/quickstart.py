"""``vla-razor quickstart``: a small RL's Razor study on the built-in default (configs/quickstart.yaml)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from vla_razor.commands import razor


def run(cfg: DictConfig) -> dict[str, Any]:
    return razor.run(cfg)
