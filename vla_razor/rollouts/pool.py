"""A persistent pool of env worker processes that lives for a whole command.

Workers start with forkserver (spawn where the platform lacks it), never fork: a forked child inherits
the parent's GL context and hangs on its first render (see envs/vector.py). Each worker keeps every env
it builds (keyed by the env kwargs) and reuses it for later checkpoints, tasks and seeds.

Faults: a worker whose process dies (a simulator segfault, the OOM killer) or stops answering is
replaced by a fresh one and reported to the caller as :class:`WorkerDied`; the caller counts its
episodes as failures and carries on. "Stops answering" counts only time the command itself was
running: a command suspended with Ctrl-Z / SIGSTOP (or a machine that slept) resumes with its workers
intact. ``close()`` (also on Ctrl-C through the context manager) stops every worker and leaves no
process behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from vla_razor.errors import BadInputError
from vla_razor.rollouts.messages import Failed, Op, Sent
from vla_razor.rollouts.settings import EngineSettings
from vla_razor.rollouts.worker import EnvFactory, RobosuiteEnvFactory, worker_main

log = logging.getLogger(__name__)

# Hang detection waits in slices this long; a slice that overran by more than its own length means this
# process was not running through it (suspended), and that time is not counted as the worker's.
WAIT_SLICE_S = 5.0


def wait_awake(handles: Sequence[Any], timeout: float) -> list[Any]:
    """``multiprocessing.connection.wait`` whose timeout counts only time this process was running.

    A plain ``wait(timeout)`` resumed after a suspension longer than ``timeout`` finds its deadline
    past at once, before the workers (suspended and resumed with it) have had a moment to answer, and
    every busy worker would be declared hung, its episodes logged as failures.
    """
    waited = 0.0
    while waited < timeout:
        slice_s = min(WAIT_SLICE_S, timeout - waited)
        start = time.monotonic()
        ready = wait(handles, timeout=slice_s)
        if ready:
            return ready
        elapsed = time.monotonic() - start
        if elapsed <= 2 * slice_s:
            waited += elapsed
    return []


class WorkerDied(RuntimeError):
    """A worker process died or hung; it has already been replaced by a fresh one."""

    def __init__(self, worker: int, reason: str) -> None:
        super().__init__(f"env worker {worker} {reason}; replaced by a fresh worker")
        self.worker = worker
        self.reason = reason


class WorkerError(RuntimeError):
    """An env operation raised inside a worker (the worker itself is fine); carries the remote traceback."""


def env_key(kwargs: dict[str, Any]) -> str:
    """A stable identity for env kwargs: the key under which workers keep the env they built."""
    return json.dumps(kwargs, sort_keys=True, default=lambda v: list(v) if isinstance(v, tuple) else str(v))


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.outstanding: deque[Sent | None] = deque()  # tags of batches sent and not yet answered, in order


class EnvPool:
    """``settings.workers`` env worker processes; send batches of operations, receive their results."""

    def __init__(self, settings: EngineSettings | None = None, env_factory: EnvFactory | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.factory = env_factory or RobosuiteEnvFactory(config_task_specs())
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx = mp.get_context(method)
        self._env_vars = {"LP_NUM_THREADS": str(self.settings.lp_threads)}
        self._workers: list[_Worker | None] = []
        self.replaced = 0
        self._closed = False
        try:
            self._workers = [self._start() for _ in range(self.settings.workers)]
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=worker_main,
            args=(child, self.factory, self._env_vars, os.getpid(), self.settings.env_limit),
            daemon=True,
            name="vla-razor-env",
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def num_workers(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w is not None]

    def replace(self, index: int, reason: str) -> None:
        """Stop worker ``index`` (whatever its state) and start a fresh one in its place."""
        old = self._workers[index]
        if old is not None:
            log.warning("env worker %d (pid %s) %s; starting a replacement", index, old.process.pid, reason)
            _stop(old, grace=0.0)
        self._workers[index] = self._start()
        self.replaced += 1

    def close(self, grace: float = 5.0) -> None:
        """Stop every worker: a polite request first; whatever has not exited after ``grace`` seconds
        (all workers together) is terminated, then killed."""
        if self._closed:
            return
        self._closed = True
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.conn.send(None)
        deadline = time.monotonic() + grace
        for worker in workers:
            _stop(worker, grace=max(0.0, deadline - time.monotonic()))
        self._workers = []

    # ------------------------------------------------------------------ messaging
    def send(self, index: int, ops: Sequence[Op], tag: Sent | None = None) -> None:
        """Queue a batch of operations on worker ``index`` (answered in order by :meth:`receive`)."""
        worker = self._worker(index)
        try:
            worker.conn.send(list(ops))
        except (BrokenPipeError, ConnectionResetError, OSError):
            self._died(index, "closed its pipe")
        worker.outstanding.append(tag)

    def pending(self, index: int) -> Sent | None:
        """The tag of the oldest unanswered batch of worker ``index`` (None if nothing is outstanding)."""
        worker = self._worker(index)
        return worker.outstanding[0] if worker.outstanding else None

    def has_pending(self, index: int) -> bool:
        return bool(self._worker(index).outstanding)

    def receive(self, index: int) -> list[Any]:
        """Results of the oldest outstanding batch of worker ``index``.

        Raises :class:`WorkerDied` (after replacing the worker; every batch it still owed is lost) or
        :class:`WorkerError` (an operation raised; the worker carries on).
        """
        worker = self._worker(index)
        if not worker.outstanding:
            raise RuntimeError(f"env worker {index} owes no results")
        ready = wait_awake([worker.conn, worker.process.sentinel], self.settings.worker_timeout)
        if not ready:
            self._died(index, f"did not answer within {self.settings.worker_timeout:.0f} s")
        try:
            reply = worker.conn.recv() if worker.conn in ready or worker.conn.poll() else None
        except (EOFError, ConnectionResetError, OSError):
            reply = None
        if reply is None:
            worker.process.join(2.0)  # the pipe closes a moment before the process is gone
            code = worker.process.exitcode
            self._died(index, f"died (exit code {code})" if code is not None else "closed its pipe")
        worker.outstanding.popleft()
        if isinstance(reply, Failed):
            if reply.name in ("ValueError", "BadInputError", "MissingFileError"):  # bad env kwargs: one line
                raise BadInputError(reply.message)
            raise WorkerError(
                f"{reply.name} in env worker {index}: {reply.message}\n--- worker traceback ---\n{reply.traceback}"
            )
        return reply.results

    def ready(self, indices: Sequence[int]) -> list[int]:
        """Those of ``indices`` whose oldest batch can be received now (answered, or the worker died);
        waits until there is at least one (at most ``worker_timeout``, then all of them: hung)."""
        workers = {i: self._worker(i) for i in indices}
        handles = {}
        for i, worker in workers.items():
            handles[worker.conn] = i
            handles[worker.process.sentinel] = i
        ready = wait_awake(list(handles), self.settings.worker_timeout)
        if not ready:
            return list(indices)
        return sorted({handles[h] for h in ready})

    def call(self, index: int, ops: Sequence[Op]) -> list[Any]:
        """Send a batch to worker ``index`` and wait for its results."""
        self.send(index, ops)
        return self.receive(index)

    def _worker(self, index: int) -> _Worker:
        if self._closed:
            raise RuntimeError("the env pool is closed")
        worker = self._workers[index]
        assert worker is not None
        return worker

    def _died(self, index: int, reason: str) -> None:
        self.replace(index, reason)
        raise WorkerDied(index, reason)


def _stop(worker: _Worker, grace: float) -> None:
    process = worker.process
    if grace > 0:
        process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(2.0)
    if process.is_alive():
        process.kill()
        process.join(2.0)
    with contextlib.suppress(Exception):
        worker.conn.close()
    with contextlib.suppress(Exception):
        process.close()


def config_task_specs() -> tuple[Any, ...]:
    """The tasks registered in this process beyond the built-in ones (config-defined, for the workers)."""
    # Imported here, as the worker imports envs: a process that never starts a pool never loads robosuite.
    from vla_razor.envs.tasks import BUILTIN_TASKS, TASKS

    return tuple(spec for name, spec in TASKS.items() if name not in BUILTIN_TASKS)
