"""One writer per folder: a folder held by a live process (a real second process) is refused in one line
naming its host and pid, in the library and through the CLI; the lock of a killed holder is taken over,
and the log says so."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import cli
from vla_razor.errors import FolderBusyError
from vla_razor.folder_lock import LOCK_NAME, OWNER_NAME, folder_lock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def holder(tmp_path):
    """A second process holding tmp_path/folder's lock; killed (SIGKILL) at the end if still alive."""
    folder = tmp_path / "folder"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.hold_lock", str(folder)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_second_writer_is_refused_then_a_dead_holders_lock_is_taken_over(holder, caplog) -> None:
    folder, proc = holder
    with pytest.raises(FolderBusyError) as refused, folder_lock(folder, "results folder"):
        pass
    message = str(refused.value)
    assert "\n" not in message
    assert f"pid {proc.pid} on host {socket.gethostname()}" in message and "hold_lock" in message
    assert str(folder) in message and "use another folder" in message

    os.kill(proc.pid, signal.SIGKILL)  # dies holding it: the OS releases the lock, the sidecar stays behind
    proc.wait()
    assert (folder / OWNER_NAME).is_file()
    with (
        caplog.at_level(logging.WARNING, logger="vla_razor.folder_lock"),
        folder_lock(folder, "results folder"),
    ):
        assert f"pid {os.getpid()}" not in caplog.text
        assert "taking over the lock left by" in caplog.text and f"pid {proc.pid}" in caplog.text
    assert not (folder / OWNER_NAME).exists() and (folder / LOCK_NAME).is_file()  # released cleanly


def test_a_process_re_enters_a_folder_it_holds(tmp_path) -> None:
    with folder_lock(tmp_path, "study folder"), folder_lock(tmp_path / ".", "study folder"):
        assert (tmp_path / OWNER_NAME).is_file()
    assert not (tmp_path / OWNER_NAME).exists()
    with folder_lock(tmp_path, "study folder"):  # released: free again
        pass


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["eval", "train"])
def test_the_cli_refuses_a_folder_another_command_writes(holder, tmp_path, verb) -> None:
    folder, proc = holder
    args = ["checkpoints=[]", "suite.episodes=1"] if verb == "eval" else ["trainer=bc"]
    out = cli(verb, f"out_dir={folder}", *args, f"hydra.run.dir={tmp_path / 'hydra'}")
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "is being written by" in last and f"pid {proc.pid}" in last, (
        out.stderr[-2000:]
    )
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME, OWNER_NAME]  # nothing written
