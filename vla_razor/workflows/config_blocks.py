"""A verb's config blocks read into the settings of the layers below: env kwargs and engine resources.

Shared by the commands and the workflows under them (a study composes a ``train`` config and runs it).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla_razor.rollouts import EngineSettings


def env_kwargs_from_cfg(cfg: DictConfig) -> dict[str, Any]:
    """Merge the task group's env overrides with the verb's ``env`` block into ``envs.make_env`` kwargs."""
    kwargs: dict[str, Any] = {"task": str(cfg.task.name)}
    for block in (cfg.task.get("env"), cfg.get("env")):
        if block:
            kwargs.update(
                {k: v for k, v in OmegaConf.to_container(block, resolve=True).items() if v is not None}
            )
    if "cameras" in kwargs:
        kwargs["cameras"] = tuple(kwargs["cameras"])
    return kwargs


def engine_settings(cfg: DictConfig) -> EngineSettings:
    """The rollout engine's resources from the verb's ``engine`` block (machine defaults where null)."""
    block = cfg.get("engine")
    return EngineSettings.from_mapping(None if block is None else OmegaConf.to_container(block, resolve=True))
