"""``vla-razor demos``: collect successful scripted-expert episodes into an HDF5 file."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from vla_razor.commands.common import env_kwargs_from_cfg, positive_int
from vla_razor.data.demos import collect_demos

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    kwargs = env_kwargs_from_cfg(cfg)
    task = kwargs.pop("task")
    summary = collect_demos(
        task,
        positive_int(cfg.episodes, "episodes"),
        cfg.out,
        seed=int(cfg.seed),
        num_workers=positive_int(cfg.num_workers, "num_workers"),
        noise_std=float(cfg.noise_std),
        max_attempts=cfg.max_attempts,
        valid_fraction=float(cfg.valid_fraction),
        env_kwargs=kwargs,
    )
    print(
        f"{summary.task}: kept {summary.succeeded} demos ({summary.total_samples} steps) of {summary.tried} "
        f"tried ({summary.success_rate:.0%} expert success) in {summary.seconds:.0f}s -> {summary.path}"
    )
