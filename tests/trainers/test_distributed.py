"""Two CPU processes under torchrun (gloo): identical weights after training, one checkpoint writer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(tmp_path: Path, *args: str, timeout: float = 240) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(WORKER),
        *args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("mode", ["bc", "ppo", "rft"])
def test_two_rank_training_keeps_weights_identical(mode, tmp_path, lift_demos) -> None:
    out = tmp_path / mode
    out.mkdir()
    _torchrun(tmp_path, mode, str(out), str(lift_demos))
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9, abs=1e-9)
    # Only rank 0 writes checkpoints and logs.
    assert (out / "checkpoints" / "latest").is_file()
    assert (out / "metrics.jsonl").is_file()


def test_one_rank_over_target_kl_stops_every_rank(tmp_path) -> None:
    """Rank 1 alone sees approx_kl over target_kl. Decided per rank, it left the minibatch loop while
    rank 0 waited in the next all-reduce: the run hung. Decided on the mean over ranks, both stop."""
    out = tmp_path / "stop"
    out.mkdir()
    _torchrun(tmp_path, "ppo_stop_one_rank", str(out), timeout=180)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9, abs=1e-9)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(m["train/early_stop"] == 1.0 for m in metrics if "train/early_stop" in m)


def test_nan_on_one_rank_stops_every_rank_with_a_checkpoint(tmp_path) -> None:
    out = tmp_path / "nan"
    out.mkdir()
    _torchrun(tmp_path, "ppo_nan_one_rank", str(out), timeout=180)
    raised = [json.loads((out / f"raised{r}.json").read_text())["raised"] for r in (0, 1)]
    assert all(r and "non-finite PPO loss" in r for r in raised), raised
    assert "last good weights saved in" in raised[0] and "iteration" in raised[0]
    state = torch.load(next((out / "checkpoints").glob("step_*")) / "trainer_state.pt", weights_only=False)
    assert state["nonfinite"] and "non-finite" in state["nonfinite"]
