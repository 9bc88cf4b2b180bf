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

from vla_razor.policies import load_policy

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


@pytest.mark.parametrize(
    "mode",
    # BC in the default run (the KL-stop and NaN tests below train PPO on two ranks too); PPO's and RFT's
    # weight checks (about 17 s each) with the slow tests.
    ["bc", pytest.param("ppo", marks=pytest.mark.slow), pytest.param("rft", marks=pytest.mark.slow)],
)
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


@pytest.mark.slow  # about 50 s: two ranks train twice (replicated, then FSDP) and resume
def test_fsdp_full_finetune_matches_replicated_training_and_resumes(tmp_path) -> None:
    """FSDP2 under gloo: the same run sharded and replicated gives the same weights (FSDP's
    reduce-scatter averages gradients like the explicit all-reduce); the checkpoint holds the full
    weights, loads as an ordinary policy, and resumes sharded."""
    fsdp, replicated = tmp_path / "fsdp", tmp_path / "replicated"
    for out, mode in ((fsdp, "ppo_fsdp"), (replicated, "ppo_replicated")):
        out.mkdir()
        _torchrun(tmp_path, mode, str(out), timeout=200)
    a = load_policy(fsdp / "checkpoints" / "step_000002" / "policy").model.state_dict()
    b = load_policy(replicated / "checkpoints" / "step_000002" / "policy").model.state_dict()
    assert a.keys() == b.keys()
    # Adam turns a gradient that is zero up to rounding (a conv bias before a norm layer) into a
    # full-size step whose sign is rounding noise; every other tensor must agree to float precision.
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a}
    close = [k for k, d in diffs.items() if d < 1e-5]
    assert len(close) >= 0.9 * len(diffs), sorted(diffs.items(), key=lambda kv: -kv[1])[:5]
    assert max(diffs.values()) < 1e-3
    state = torch.load(fsdp / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=False)
    assert state["optimizer"]["state"], "the gathered optimizer state must not be empty"
    _torchrun(tmp_path, "ppo_fsdp_resume", str(fsdp), timeout=200)
    assert (fsdp / "checkpoints" / "step_000003").is_dir()
