"""Stop requests during training: Ctrl-C, and a scheduler's preemption (SIGTERM, SIGUSR1; see
:mod:`vla_razor.preemption`). The first request asks the loop to stop at its next safe point (after the
current update, with a checkpoint); a second Ctrl-C stops at once, while repeated preemption signals are
ignored (the checkpoint they ask for is already coming; a scheduler that will not wait sends SIGKILL, and
the atomic checkpoint write leaves the previous one intact). A signal handler never writes a checkpoint
itself: it could fire half-way through an optimizer step or a save."""

from __future__ import annotations

import logging
import signal
from typing import Any

from vla_razor.preemption import PREEMPTION_SIGNALS, Preempted

log = logging.getLogger(__name__)


class InterruptFlag:
    """Turns the first stop request into a flag checked between steps, so a checkpoint is never torn."""

    def __init__(self) -> None:
        self.fired = False
        self.signum: int | None = None  # the signal that asked first
        self._previous: dict[int, Any] = {}
        try:
            for sig in (signal.SIGINT, *PREEMPTION_SIGNALS):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread (e.g. some test runners): keep default behaviour
            pass

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:
            # A second Ctrl-C stops right away. A Ctrl-C after a preemption signal does not: it is how Ray
            # asks a unit to stop (a stopped driver cancels its units), and that unit's checkpoint is coming.
            if signum == signal.SIGINT and self.signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.warning("%s again: the checkpoint is on its way", signal.Signals(signum).name)
            return
        self.fired = True
        self.signum = signum
        if signum == signal.SIGINT:
            log.warning(
                "Ctrl-C: finishing this step, saving a checkpoint, then exiting (press again to abort)"
            )
        else:
            log.warning(
                "%s: finishing this step, saving a checkpoint, then exiting", signal.Signals(signum).name
            )

    def __bool__(self) -> bool:
        return self.fired

    def stop(self) -> KeyboardInterrupt:
        """What the loop raises once the checkpoint is saved: Preempted for a scheduler, else Ctrl-C's."""
        if self.signum is not None and self.signum != signal.SIGINT:
            return Preempted(self.signum)
        return KeyboardInterrupt()

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            if previous is not None:
                signal.signal(sig, previous)
