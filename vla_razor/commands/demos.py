"""``vla-razor demos``: collect successful scripted-expert episodes into an HDF5 file."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from vla_razor.commands.common import positive_int
from vla_razor.data.demos import DemoRequest, collect_demos
from vla_razor.rollouts import EnvPool
from vla_razor.workflows.config_blocks import engine_settings, env_kwargs_from_cfg

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    kwargs = env_kwargs_from_cfg(cfg)
    task = kwargs.pop("task")
    episodes = positive_int(cfg.episodes, "episodes")
    with EnvPool(engine_settings(cfg)) as pool:
        request = DemoRequest(
            task,
            episodes,
            seed=int(cfg.seed),
            noise_std=float(cfg.noise_std),
            max_attempts=cfg.max_attempts,
            valid_fraction=float(cfg.valid_fraction),
            env_kwargs=kwargs,
        )
        summary = collect_demos(request, cfg.out, pool=pool)
    print(
        f"{summary.task}: kept {summary.succeeded} demos ({summary.total_samples} steps) of {summary.tried} "
        f"tried ({summary.success_rate:.0%} expert success) in {summary.seconds:.0f}s -> {summary.path}"
    )
