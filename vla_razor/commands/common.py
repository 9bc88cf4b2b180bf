"""Helpers shared by the CLI verbs: config validation, config-defined tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig

from vla_razor.config import config_dir
from vla_razor.envs import TASKS, register_task, task_from_config
from vla_razor.errors import BadInputError


def positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def register_config_tasks(cfg: DictConfig) -> list[str]:
    """Register every task this run names whose config file defines it (``define:``); returns their names.

    A run names tasks through its ``task`` group and through the suite (and pretrain's demo counts), which
    hold bare names: those are looked up as ``task/<name>`` on hydra's config search path, so a user's
    own config directory (``--config-dir``, ``hydra.searchpath``) can add tasks too.
    """
    registered = []
    task = cfg.get("task")
    if task is not None and task.get("define") is not None:
        registered.append(register_task(task_from_config(str(task.name), task.define)).name)
    for name in _named_tasks(cfg):
        if name in TASKS:
            continue
        node = _task_config(name)
        if node is not None and node.get("define") is not None:
            registered.append(register_task(task_from_config(name, node.define)).name)
    return registered


def _named_tasks(cfg: DictConfig) -> Iterator[str]:
    suite = cfg.get("suite")
    if suite is not None:
        yield from (str(t) for t in (suite.get("new_task"), *suite.get("prior_tasks", [])) if t)
    demos = cfg.get("demos")  # pretrain: {episodes: {task: count}}; train: a list of demo files
    episodes = demos.get("episodes") if isinstance(demos, DictConfig) else None
    if isinstance(episodes, DictConfig):
        yield from (str(t) for t in episodes)


def _task_config(name: str) -> DictConfig | None:
    """``configs/task/<name>.yaml`` (None if there is none: the caller reports the unknown task)."""
    overrides = [f"+task={name}"]
    try:
        if GlobalHydra.instance().is_initialized():  # under the CLI: its search path, its overrides
            return compose(overrides=overrides).task
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(overrides=overrides).task
    except HydraException:
        return None
