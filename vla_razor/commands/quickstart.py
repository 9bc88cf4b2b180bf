"""``vla-razor quickstart``: a small RL's Razor study on the built-in default (configs/quickstart.yaml).

The ``razor`` verb's study (``workflows.study``) on a config sized for a CPU laptop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vla_razor.workflows.config_blocks import engine_settings
from vla_razor.workflows.study import StudyConfig, rebuild_report, run_study


def run(cfg: DictConfig) -> dict[str, Any]:
    if cfg.from_results:
        return rebuild_report(str(cfg.from_results), Path(cfg.out_dir))
    return run_study(StudyConfig.from_cfg(cfg), engine_settings(cfg))
