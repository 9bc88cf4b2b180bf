"""Helpers shared by the CLI verbs: config -> env kwargs, config validation, config-defined tasks."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla_razor.errors import BadInputError
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


def positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def engine_settings(cfg: DictConfig) -> EngineSettings:
    """The rollout engine's resources from the verb's ``engine`` block (machine defaults where null)."""
    block = cfg.get("engine")
    return EngineSettings.from_mapping(None if block is None else OmegaConf.to_container(block, resolve=True))
