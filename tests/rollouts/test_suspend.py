"""A command suspended (Ctrl-Z / SIGSTOP) for longer than the hang timeout resumes without declaring its
busy workers hung: the hang timeout counts only time the waiting process was running."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import pytest

from vla_razor.rollouts.pool import wait_awake

TIMEOUT_S = 1.0
SUSPENDED_S = 2.5  # more than twice the timeout: a plain wait's deadline is long past on resume
ANSWER_AFTER_RESUME_S = 0.3


def _plain_wait(handles: Sequence[Any], timeout: float) -> list[Any]:
    return wait(handles, timeout=timeout)


def _waiter(waiter: Callable[..., list[Any]], conn: Connection, report: Connection) -> None:
    report.send("waiting")
    ready = waiter([conn], TIMEOUT_S)
    report.send("answered" if ready else "timed out")


def _suspend_while_waiting(waiter: Callable[..., list[Any]]) -> str:
    """Runs ``waiter`` in a child, suspends the child mid-wait, resumes it, then answers it."""
    ctx = mp.get_context("fork")  # the child only waits on a pipe: no GL, nothing fork-unsafe
    answer_end, wait_end = ctx.Pipe()
    report_parent, report_child = ctx.Pipe()
    child = ctx.Process(target=_waiter, args=(waiter, wait_end, report_child), daemon=True)
    child.start()
    try:
        assert report_parent.poll(30) and report_parent.recv() == "waiting"
        time.sleep(0.2)
        os.kill(child.pid, signal.SIGSTOP)
        time.sleep(SUSPENDED_S)
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(ANSWER_AFTER_RESUME_S)
        answer_end.send("result")
        assert report_parent.poll(30)
        return report_parent.recv()
    finally:
        os.kill(child.pid, signal.SIGCONT)
        child.join(5)
        if child.is_alive():
            child.kill()


@pytest.mark.parametrize(("waiter", "outcome"), [(wait_awake, "answered"), (_plain_wait, "timed out")])
def test_a_suspension_does_not_count_as_the_workers_hang(
    waiter: Callable[..., list[Any]], outcome: str
) -> None:
    # The plain wait is the defect this guards against: resumed past its deadline, it gives up before the
    # answer that comes a moment later, and the pool would replace a healthy worker.
    assert _suspend_while_waiting(waiter) == outcome


def test_a_silent_worker_still_times_out() -> None:
    receive, _send = mp.Pipe(duplex=False)
    start = time.monotonic()
    assert wait_awake([receive], 0.5) == []
    assert 0.5 <= time.monotonic() - start < 5.0
