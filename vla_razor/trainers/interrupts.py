"""Ctrl-C during training: the first one asks the loop to stop at its next safe point (after the current
update, with a checkpoint), the second stops at once. A signal handler never writes a checkpoint itself:
it could fire half-way through an optimizer step or a save."""

from __future__ import annotations

import logging
import signal
from typing import Any

log = logging.getLogger(__name__)


class InterruptFlag:
    """Turns the first Ctrl-C into a flag checked between steps, so a checkpoint is never torn."""

    def __init__(self) -> None:
        self.fired = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread (e.g. some test runners): keep default behaviour
            self._previous = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:  # second Ctrl-C: stop right away
            raise KeyboardInterrupt
        self.fired = True
        log.warning("Ctrl-C: finishing this step, saving a checkpoint, then exiting (press again to abort)")

    def __bool__(self) -> bool:
        return self.fired

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
