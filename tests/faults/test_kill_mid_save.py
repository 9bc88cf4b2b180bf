"""SIGKILL of the trainer mid-save: the checkpoint write is a temporary folder renamed into place, so a kill
leaves the previous checkpoint as the latest one, whole and loadable, and the half-written one invisible."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vla_razor.checkpoints import expand_checkpoints, latest_checkpoint, list_checkpoints
from vla_razor.policies import load_policy
from vla_razor.trainers.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_kill_mid_save_leaves_the_previous_checkpoint(tmp_path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.killed_save", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "saving"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001"]
    assert latest_checkpoint(tmp_path).name == "step_000001"
    assert load_checkpoint(tmp_path).trainer_state == {"step": 1}
    assert [pid for pid, _ in expand_checkpoints([str(tmp_path)], True)] == [f"{tmp_path.name}/step_000001"]
    load_policy(load_checkpoint(tmp_path).policy_dir)  # whole: it loads
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".step_000002.")]
    assert len(leftovers) == 1  # the cut save stays in its hidden temporary folder, read by nothing
