"""Checkpoint folders: atomic, a `latest` pointer, pruning, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla_razor.checkpoints import latest_checkpoint, list_checkpoints, resolve_policy_dir
from vla_razor.trainers.checkpoint import load_checkpoint, save_checkpoint


class _FakePolicy:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, path: Path) -> None:
        path.mkdir(parents=True)
        (path / "weights.safetensors").write_text("w")
        if self.fail:
            raise OSError("disk full")


def test_save_load_latest_and_prune(tmp_path) -> None:
    for step in (10, 20, 30):
        save_checkpoint(
            tmp_path,
            step,
            policy=_FakePolicy(),
            trainer_state={"step": step, "t": torch.ones(2)},
            config={"trainer": {"name": "bc"}},
            metrics={"loss": 1.0 / step},
            keep_last=2,
        )
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step_000020", "step_000030"]
    assert latest_checkpoint(tmp_path).name == "step_000030"
    loaded = load_checkpoint(tmp_path)
    assert loaded.trainer_state["step"] == 30
    assert loaded.config.trainer.name == "bc"
    assert resolve_policy_dir(tmp_path) == loaded.path / "policy"
    assert resolve_policy_dir(loaded.path) == loaded.path / "policy"


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path) -> None:
    save_checkpoint(tmp_path, 1, policy=_FakePolicy(), trainer_state={"step": 1}, config={})
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, policy=_FakePolicy(fail=True), trainer_state={"step": 2}, config={})
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name != "latest"] == ["step_000001"]
    assert load_checkpoint(tmp_path).trainer_state["step"] == 1


def test_missing_checkpoints_are_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_policy_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="not a training checkpoint"):
        load_checkpoint(tmp_path)
