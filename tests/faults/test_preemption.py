"""Preemption by signal on a real child process: SIGTERM (and SLURM's early-warning SIGUSR1) stops training
after a checkpoint with exit code 75, and the same command with resume continues bit-identically; an
evaluation stopped the same way leaves nothing half-written and resumes to the uninterrupted episodes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.faults import preempted_training
from tests.rollouts import interrupted_eval
from tests.rollouts.test_engine_robosuite import PI0, _group_alive
from tests.trainers.tiny_policy import tiny_policy_cfg
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.folder_lock import OWNER_NAME
from vla_razor.policies import build_policy, load_policy
from vla_razor.preemption import PREEMPTED_EXIT_CODE
from vla_razor.trainers.base import TrainingRun
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.loop import run_training

REPO = Path(__file__).resolve().parents[2]


def _start(module: str, *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        start_new_session=True,  # its own process group, as a batch job's step
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115 (a pipe could fill up and stall the child)
    )


def _wait_for_lines(file: Path, count: int, proc: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not (file.is_file() and len(file.read_text().splitlines()) >= count):
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, f"{file.name} did not reach {count} lines in {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, pytest.param(signal.SIGUSR1, marks=pytest.mark.slow)],
    ids=["sigterm", "sigusr1"],
)
def test_preempted_training_saves_exits_75_and_resumes_bit_identically(tmp_path, sig) -> None:
    cut, log = tmp_path / "cut", tmp_path / "stderr.txt"
    proc = _start("tests.faults.preempted_training", str(cut), log=log)
    _wait_for_lines(cut / "metrics.jsonl", 2, proc, log)
    os.kill(proc.pid, sig)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, log.read_text()[-2000:]
    stderr = log.read_text()
    assert f"preempted by {sig.name}" in stderr and "checkpoint saved" in stderr
    state = load_checkpoint(cut).trainer_state
    stopped = state["step"]
    total = preempted_training.SETTINGS.num_iterations
    assert 2 <= stopped < total and stopped % preempted_training.SETTINGS.save_every != 0  # the signal's save

    resumed = subprocess.run(
        [sys.executable, "-m", "tests.faults.preempted_training", str(cut), "resume"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    full = tmp_path / "full"
    uninterrupted = build_policy(tiny_policy_cfg())
    run_training(
        preempted_training.Toy(preempted_training.SETTINGS),
        uninterrupted,
        TrainingRun(full, {}, progress=False),
    )
    a = {m["step"]: m for m in read_metrics(full)}
    b = {m["step"]: m for m in read_metrics(cut)}
    assert sorted(b) == sorted(a) == list(range(1, total + 1))
    assert [b[s] for s in range(stopped + 1, total + 1)] == [a[s] for s in range(stopped + 1, total + 1)]
    final = load_policy(load_checkpoint(cut).policy_dir)
    pairs = zip(uninterrupted.trainable_parameters(), final.trainable_parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


@pytest.mark.slow
def test_preempted_evaluation_exits_75_leaves_nothing_half_written_and_resumes(tmp_path) -> None:
    tasks = ["lift"]
    out, log = tmp_path / "results", tmp_path / "stderr.txt"
    proc = _start("tests.faults.preempted_eval", str(PI0), str(out), *tasks, log=log)
    episodes = out / "episodes.jsonl"
    _wait_for_lines(episodes, 2, proc, log)
    os.killpg(proc.pid, signal.SIGTERM)  # the whole job, as SLURM signals every process of a job step
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, log.read_text()[-2000:]
    deadline = time.monotonic() + 60
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_alive(proc.pid) == [], "processes of the preempted evaluation are still running"
    lines = episodes.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line whole: no episode half-written
    assert len(lines) < len(tasks) * interrupted_eval.EPISODES
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name or p.name == OWNER_NAME]
    assert not (out / "results.json").exists()

    suite = interrupted_eval.suite(tasks)
    resumed = run_suite(EvalConfig(PI0, suite, out, progress=False), [])
    fresh = run_suite(EvalConfig(PI0, suite, tmp_path / "fresh", progress=False), [])
    rows = [json.loads(line) for line in episodes.read_text().splitlines()]
    assert len(rows) == len({(r["task"], r["seed"]) for r in rows}) == len(tasks) * interrupted_eval.EPISODES
    assert resumed["policies"]["pi0"]["tasks"] == fresh["policies"]["pi0"]["tasks"]


@pytest.mark.slow
def test_sigterm_during_vla_razor_eval_exits_75_through_the_cli(tmp_path) -> None:
    """The CLI itself (hydra around the command) passes the exit code on, and the folder lock goes."""
    out, log = tmp_path / "results", tmp_path / "stderr.txt"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from vla_razor.cli import main; main()", "eval", f"out_dir={out}"]
        + ["suite.kl_states=0", "suite.episodes=4", "videos=0", "engine.num_workers=2"]
        + ["engine.slots_per_worker=1", f"hydra.run.dir={tmp_path / 'hydra'}"],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),  # noqa: SIM115
    )
    _wait_for_lines(out / "episodes.jsonl", 1, proc, log)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE, log.read_text()[-2000:]
    assert "preempted by SIGTERM" in log.read_text()
    assert all(json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines())
    assert not (out / OWNER_NAME).exists() and not (out / "results.json").exists()
