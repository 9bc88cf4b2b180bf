"""Stopping a study's driver while its units run on Ray (Ctrl-C, or a scheduler's SIGTERM): each running
unit is asked to stop as Ctrl-C asks, so a training saves its checkpoint after the update in progress; a
unit still running after ``units.stop_grace_s`` is killed. The units here are stand-ins with the training
loop's stop handling (``InterruptFlag``), run as real Ray tasks on a one-node cluster on this machine."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from vla_razor.errors import BadInputError
from vla_razor.preemption import PREEMPTION_SIGNALS, stop_on_preemption
from vla_razor.trainers.interrupts import InterruptFlag
from vla_razor.workflows.unit_dispatch import UnitSettings, _RayBackend


@pytest.fixture(scope="module")
def address(ray_machine: None) -> Iterator[str]:
    """A one-node cluster started as a batch script's ``ray start --head --block &`` starts one: with SIGINT
    ignored, which its workers inherit (the harder case: a unit must still be asked before it is killed)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            cluster = Cluster(
                initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            yield cluster.address
        finally:
            cluster.shutdown()


def _wait_for(path: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running or sleeping: a killed process its parent has not reaped yet (a zombie) counts as dead."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_a_stopped_driver_lets_its_ray_units_checkpoint_first(address: str, tmp_path: Path) -> None:
    def training(folder: str) -> None:  # a unit in its training loop: stops at a safe point
        flag = InterruptFlag()
        Path(folder, "started").write_text(str(os.getpid()))
        while not flag:
            time.sleep(0.05)
        Path(folder, "checkpoint").write_text("saved after the update in progress")
        raise flag.stop()

    backend = _RayBackend(UnitSettings(backend="ray", address=address, stop_grace_s=120), task=training)
    try:
        ref = backend.submit(str(tmp_path))  # type: ignore[arg-type]
        _wait_for(tmp_path / "started")
        start = time.monotonic()
        backend.cancel([ref])
        waited = time.monotonic() - start
    finally:
        backend.close()
    assert (tmp_path / "checkpoint").is_file()
    assert waited < 60, f"the unit stopped at its safe point, yet cancel waited {waited:.0f} s"


def test_a_unit_that_does_not_stop_is_killed_after_the_grace(address: str, tmp_path: Path) -> None:
    def stubborn(folder: str) -> None:  # ignores the stop request
        Path(folder, "started").write_text(str(os.getpid()))
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                Path(folder, "asked").touch()

    backend = _RayBackend(UnitSettings(backend="ray", address=address, stop_grace_s=2), task=stubborn)
    try:
        ref = backend.submit(str(tmp_path))  # type: ignore[arg-type]
        _wait_for(tmp_path / "started")
        pid = int((tmp_path / "started").read_text())
        start = time.monotonic()
        backend.cancel([ref])
        waited = time.monotonic() - start
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        backend.close()
    assert (tmp_path / "asked").exists(), "the unit was killed without being asked first"
    assert 2 <= waited < 30
    assert not _alive(pid), "the unit outlived its grace"


def test_a_driver_connected_to_ray_keeps_its_preemption_handlers(address: str) -> None:
    """ray.init installs its own SIGTERM handler (the process exits at once, nothing saved); connecting puts
    the command's back, so a scheduler's SIGTERM still stops the driver as a preemption (exit 75)."""
    with stop_on_preemption():
        ours = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, *PREEMPTION_SIGNALS)}
        backend = _RayBackend(UnitSettings(backend="ray", address=address))
        try:
            assert {sig: signal.getsignal(sig) for sig in ours} == ours
        finally:
            backend.close()


def test_stop_grace_is_checked_in_one_line() -> None:
    with pytest.raises(BadInputError, match=r"units.stop_grace_s=-1 must be a number of seconds >= 0"):
        UnitSettings(stop_grace_s=-1)
    assert UnitSettings.from_mapping({"stop_grace_s": 0}).stop_grace_s == 0
