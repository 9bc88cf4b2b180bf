"""One writer per folder: a results, study or training-run folder is written by one live command at a time.

The lock is the operating system's (``fcntl.flock`` on ``<folder>/.vla-razor.lock``): the kernel releases it
when its process exits however it exits (SIGKILL, the OOM killer, a lost node's NFS client lease), so a lock
is never stale while its file stays behind, and there is no timeout to guess. Beside it, a small sidecar
``.vla-razor.lock.json`` names the holder (host, pid, command, start time): a second command reads it to say
who writes the folder, and finding one while the lock is free means its writer died without cleaning up,
which is logged as a take-over. A process re-entering a folder it already holds (the study's results
folder, which every unit's evaluation writes) just continues.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vla_razor.errors import FolderBusyError
from vla_razor.io_utils import ensure_writable_dir, write_json_atomic

log = logging.getLogger(__name__)

LOCK_NAME = ".vla-razor.lock"
OWNER_NAME = ".vla-razor.lock.json"

# Folders this process holds, with how many nested holders: flock is per open file, so a second open by
# the same process would refuse itself.
_held: dict[Path, int] = {}


def owner_record() -> dict[str, Any]:
    """Who holds a lock: what the refusal of a second command, and the take-over of a stale one, print."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_owner(directory: Path) -> dict[str, Any] | None:
    """The sidecar's record, or None when there is none (or it was cut short: it is only a label)."""
    try:
        record = json.loads((directory / OWNER_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def describe(owner: dict[str, Any] | None) -> str:
    if owner is None:
        return "another command (it has not recorded itself yet)"
    return (
        f"`{owner.get('command', '?')}` (pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, "
        f"since {owner.get('started', '?')})"
    )


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike[str], what: str) -> Iterator[Path]:
    """Hold ``path``'s lock for the block (creating the folder); a live holder elsewhere is a one-line
    :class:`FolderBusyError` naming it. ``what`` names the folder's kind in messages ("results folder")."""
    directory = ensure_writable_dir(path, what=what)
    key = directory.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield directory
        finally:
            _held[key] -= 1
        return
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderBusyError(
            f"{what} {str(directory)!r} is being written by {describe(read_owner(directory))}; "
            "wait for it to finish, or use another folder"
        ) from None
    try:
        stale = read_owner(directory)
        if stale is not None:
            log.warning(
                "%s %s: taking over the lock left by %s, which is no longer running",
                what,
                directory,
                describe(stale),
            )
        write_json_atomic(directory / OWNER_NAME, owner_record())
        _held[key] = 1
        yield directory
    finally:
        _held.pop(key, None)
        (directory / OWNER_NAME).unlink(missing_ok=True)  # a clean exit leaves no owner behind
        os.close(fd)  # releases the lock; the empty lock file stays (removing it would race a newcomer)
