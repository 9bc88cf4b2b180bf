"""Training checkpoints: everything needed to evaluate a policy or continue its training exactly.

A run directory holds ``checkpoints/step_<N>/`` folders and a ``latest`` pointer file::

    step_000200/
      policy/              policy.save_pretrained(): safetensors weights (LoRA adapters alone when LoRA is
                           on), the policy config and the action normalisation statistics
      trainer_state.pt     optimizer + scheduler state, RNG states of every generator, counters, env seeds
      config.yaml          the full resolved hydra config of the run
      metrics.json         the last logged metrics (and in-training evaluation, when it ran)

Each checkpoint is written into a temporary folder and renamed into place, and ``latest`` is replaced
atomically after that, so a kill at any moment leaves either the previous or the new checkpoint.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import LATEST, latest_checkpoint
from vla_razor.errors import MissingFileError
from vla_razor.file_checks import RETRAIN, load_torch, read_yaml
from vla_razor.io_utils import atomic_path, ensure_writable_dir, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class LoadedCheckpoint:
    path: Path
    policy_dir: Path
    trainer_state: dict[str, Any]
    config: DictConfig


def checkpoint_name(step: int) -> str:
    return f"step_{step:06d}"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    policy: Any,
    trainer_state: dict[str, Any],
    config: DictConfig | dict[str, Any],
    metrics: dict[str, Any] | None = None,
    keep_last: int | None = None,
    backbone_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``run_dir/checkpoints/step_<step>`` atomically and point ``latest`` at it.

    ``backbone_state``: the full weights of an FSDP-sharded backbone, gathered by every rank beforehand."""
    ckpt_root = ensure_writable_dir(Path(run_dir) / "checkpoints", what="checkpoint directory")
    final = ckpt_root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=ckpt_root))
    try:
        if backbone_state is None:
            policy.save_pretrained(tmp / "policy")
        else:
            policy.save_pretrained(tmp / "policy", backbone_state=backbone_state)
        torch.save(trainer_state, tmp / "trainer_state.pt")
        cfg = config if isinstance(config, DictConfig) else OmegaConf.create(config)
        (tmp / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
        if metrics is not None:
            write_json_atomic(tmp / "metrics.json", metrics)
        if final.exists():  # re-saving the same step (e.g. Ctrl-C right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with atomic_path(ckpt_root / LATEST, suffix="") as pointer:
        pointer.write_text(final.name + "\n")
    if keep_last:
        _prune(ckpt_root, keep_last, protect=final.name)
    log.info("saved checkpoint %s", final)
    return final


def _prune(ckpt_root: Path, keep_last: int, protect: str) -> None:
    steps = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in steps[:-keep_last]:
        if old.name != protect:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Load a checkpoint folder (or the latest one of a run folder) without building the policy."""
    path = Path(path)
    if (path / "checkpoints").is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise MissingFileError(f"run directory {str(path)!r} has no checkpoints to resume from")
        path = latest
    state_file = path / "trainer_state.pt"
    if not state_file.is_file():
        raise MissingFileError(f"{str(path)!r} is not a training checkpoint (no trainer_state.pt)")
    # Our own files: they hold numpy RNG tuples and python objects, so full unpickling is needed. A file
    # cut short (a kill outside the atomic save, a bad copy) is one line naming it.
    trainer_state = load_torch(state_file, RETRAIN)
    config = read_yaml(path / "config.yaml", RETRAIN)
    return LoadedCheckpoint(path, path / "policy", trainer_state, config)
