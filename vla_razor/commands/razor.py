"""``vla-razor razor``: train a sweep of fine-tuning runs from pi0, evaluate every checkpoint on the
held-out suite, and write the study report (Pareto plot, predictors table, matched success, report.md).

``--from-results DIR`` rebuilds the report from a recorded study (or a results.json) without running
anything; ``--compare OTHER`` with it also writes replication.md, RL's Razor's claims checked in both
studies (``evaluation.replication``). The study itself is ``workflows.study``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vla_razor.errors import BadInputError
from vla_razor.workflows.config_blocks import engine_settings
from vla_razor.workflows.study import StudyConfig, rebuild_report, run_study


def run(cfg: DictConfig) -> dict[str, Any]:
    compare = cfg.get("compare")
    if cfg.from_results:
        return rebuild_report(str(cfg.from_results), Path(cfg.out_dir), str(compare) if compare else None)
    if compare:
        # Comparing needs both studies recorded; silently running a new study instead would cost hours.
        raise BadInputError(
            "--compare (compare=DIR) needs --from-results DIR: it compares two recorded studies"
        )
    return run_study(StudyConfig.from_cfg(cfg), engine_settings(cfg))
