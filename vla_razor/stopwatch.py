"""Wall time that counts only while this process runs: a stopwatch that a suspension does not inflate.

A study paused with Ctrl-Z or SIGSTOP (to free the machine for something else) resumes with the
monotonic clock advanced by the whole pause. A daemon thread ticks every ``tick_s``; a tick that arrives
more than ``suspended_after_s`` late means the process was not running, and that gap counts as one
tick. A thread held off by the GIL or a busy machine is late by far less, so that time is counted.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from types import TracebackType


class AwakeStopwatch:
    """``with AwakeStopwatch() as watch: ...`` then ``watch.seconds``: wall seconds spent awake."""

    def __init__(self, tick_s: float = 1.0, suspended_after_s: float = 30.0) -> None:
        if not 0 < tick_s < suspended_after_s:
            raise ValueError(f"need 0 < tick_s < suspended_after_s, got {tick_s} and {suspended_after_s}")
        self.tick_s = tick_s
        self.suspended_after_s = suspended_after_s
        self._awake = 0.0
        self._last = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="awake-stopwatch", daemon=True)

    def _advance(self) -> None:
        now = time.monotonic()
        with self._lock:
            gap = now - self._last
            self._awake += gap if gap <= self.suspended_after_s else self.tick_s
            self._last = now

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self._advance()

    def __enter__(self) -> AwakeStopwatch:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._advance()

    @property
    def seconds(self) -> float:
        with self._lock:
            return self._awake


def utc_now() -> str:
    """This moment in UTC, to the second (ISO 8601): when a unit's process started and ended its work."""
    return datetime.now(UTC).isoformat(timespec="seconds")
