"""A command's exit on preemption, in process: a scheduler's signal exits 75 even when a library turns the
exception our handler raised into a plain KeyboardInterrupt (Ray's waits do: a study driver waiting on
its units), while a real Ctrl-C stays Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import pytest

from vla_razor.preemption import PREEMPTED_EXIT_CODE, Preempted, exit_code_on_preemption
from vla_razor.trainers.interrupts import InterruptFlag


def _signal_self(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(5)  # the handler raises here, long before the sleep ends
    raise AssertionError(f"{sig.name} raised nothing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_preemption_signal_exits_75(sig: signal.Signals, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped, exit_code_on_preemption():
        _signal_self(sig)
    assert stopped.value.code == PREEMPTED_EXIT_CODE
    assert f"stopped: preempted by {sig.name}; run the same command again" in capsys.readouterr().err


def test_a_preemption_signal_turned_into_ctrl_c_still_exits_75() -> None:
    with pytest.raises(SystemExit) as stopped, exit_code_on_preemption():
        try:
            _signal_self(signal.SIGTERM)
        except Preempted:
            raise KeyboardInterrupt from None  # what ray.wait raises in its place
    assert stopped.value.code == PREEMPTED_EXIT_CODE


def test_ctrl_c_is_not_taken_for_a_preemption() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as stopped, exit_code_on_preemption():
        raise KeyboardInterrupt
    assert not isinstance(stopped.value, Preempted)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler in place before is back


def test_a_training_asked_to_stop_twice_still_saves_unless_ctrl_c_is_pressed_twice() -> None:
    """The training loop's flag: a Ctrl-C after a preemption signal (Ray cancelling a unit its scheduler
    already signalled) waits for the checkpoint like the first request; only a second Ctrl-C aborts."""
    flag = InterruptFlag()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the checkpoint is on its way
        assert flag and isinstance(flag.stop(), Preempted)
    finally:
        flag.restore()
    flag = InterruptFlag()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    finally:
        flag.restore()
