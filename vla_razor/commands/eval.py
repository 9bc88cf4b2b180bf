"""``vla-razor eval``: the held-out suite for pi0 and a list of checkpoints.

Prints a markdown table and writes ``<out_dir>/results.json`` (machine-readable: versions, seeds, N,
git commit) next to the append-only ``episodes.jsonl``; an interrupted run resumes from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from vla_razor.checkpoints import expand_checkpoints
from vla_razor.errors import BadInputError
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.table import results_table
from vla_razor.rollouts import EnvPool
from vla_razor.workflows.config_blocks import engine_settings


def run(cfg: DictConfig) -> dict[str, Any]:
    config = EvalConfig.from_cfg(cfg, out_dir=cfg.out_dir)
    if config.videos < 0:
        raise BadInputError(f"videos must be >= 0, got {cfg.videos}")
    checkpoints = expand_checkpoints([str(p) for p in cfg.checkpoints], bool(cfg.all_checkpoints))
    with EnvPool(engine_settings(cfg)) as pool:
        document = run_suite(config, checkpoints, pool)
    table = results_table(document)
    print(table)
    (Path(cfg.out_dir) / "results.md").write_text(table)
    print(f"results: {Path(cfg.out_dir) / 'results.json'}")
    return document
