"""Preemption: a scheduler's request to stop (SLURM's SIGTERM, or the SIGUSR1 it sends ahead of a time limit
with ``--signal=USR1@<seconds>``; a spot instance's shutdown), and the exit code that says "resume me".

Training turns the signal into a flag its loop reads at the next safe point (``trainers.interrupts``): it
saves a checkpoint, then raises :class:`Preempted`. Anywhere else (evaluation, a study between units) the
signal raises :class:`Preempted` at once, as Ctrl-C raises KeyboardInterrupt; every writer there is
append-only or atomic, so nothing is left half-written. The CLI exits with :data:`PREEMPTED_EXIT_CODE`.

The code is 75, ``EX_TEMPFAIL`` of sysexits.h ("temporary failure; the user is invited to retry"): a job
script or a requeue hook can tell "stopped cleanly, run the same command again" apart from Ctrl-C (130),
from a kill before anything was saved (143 = 128 + SIGTERM, 137 = SIGKILL), and from an error (1).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType

PREEMPTION_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGUSR1)
PREEMPTED_EXIT_CODE = 75


class Preempted(KeyboardInterrupt):
    """Stopped by a preemption signal. A KeyboardInterrupt, so every path that stops cleanly on Ctrl-C
    (the env pool, Ray units, atomic writes) stops the same way on preemption."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"preempted by {signal.Signals(signum).name}")


# Every preemption signal turned into Preempted, in order. Ray's blocking calls (``ray.wait``, ``ray.get``)
# catch any KeyboardInterrupt a signal handler raises while they wait and raise a plain KeyboardInterrupt
# instead, so a driver waiting on Ray would lose which signal stopped it; this record keeps it.
_raised: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    _raised.append(signum)
    raise Preempted(signum)


def preemptions_so_far() -> int:
    """How many preemption signals this process has turned into :class:`Preempted`: one more after a
    KeyboardInterrupt than before it means the interrupt was a preemption, whatever its type."""
    return len(_raised)


@contextlib.contextmanager
def stop_on_preemption() -> Iterator[None]:
    """Inside, a preemption signal raises :class:`Preempted` (the training loop defers it to a safe point)."""
    previous: dict[signal.Signals, object] = {}
    try:
        for sig in PREEMPTION_SIGNALS:
            previous[sig] = signal.signal(sig, _raise)
    except ValueError:  # not the main thread: leave the default behaviour
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


@contextlib.contextmanager
def exit_code_on_preemption() -> Iterator[None]:
    """What a command does with :class:`Preempted`: one line, and exit with :data:`PREEMPTED_EXIT_CODE`."""
    before = len(_raised)
    with stop_on_preemption():
        try:
            yield
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, Preempted):
                stop = interrupt
            elif len(_raised) > before:  # a preemption signal, re-raised as Ctrl-C's by Ray (see _raised)
                stop = Preempted(_raised[before])
            else:
                raise
            # The command's last line, on stderr like an `error:` line (hydra logs to stdout and a file).
            print(
                f"stopped: {stop}; run the same command again (training: resume=true) to continue",
                file=sys.stderr,
            )
            raise SystemExit(PREEMPTED_EXIT_CODE) from None
