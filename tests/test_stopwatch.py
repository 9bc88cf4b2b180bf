"""The study's stopwatch leaves out the time its process spent suspended (SIGSTOP), and only that."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vla_razor.stopwatch import AwakeStopwatch

# The child sleeps 15 x 0.2 s (3 s awake) inside the stopwatch and reports it beside the plain clock.
CHILD = """
import json, sys, time
from vla_razor.stopwatch import AwakeStopwatch
start = time.monotonic()
with AwakeStopwatch(tick_s=0.1, suspended_after_s=1.0) as watch:
    print("ready", flush=True)
    for _ in range(15):
        time.sleep(0.2)
print(json.dumps({"awake": watch.seconds, "wall": time.monotonic() - start}), flush=True)
"""


def test_a_suspension_is_left_out_and_the_plain_clock_would_count_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    os.kill(child.pid, signal.SIGSTOP)
    time.sleep(2.5)
    os.kill(child.pid, signal.SIGCONT)
    out, _ = child.communicate(timeout=60)
    figures = json.loads(out.strip().splitlines()[-1])
    # The plain clock counts the 2.5 s pause (the measurement this replaces); the stopwatch keeps the 3 s
    # of sleeping, less at most the one 0.2 s sleep that the pause cut short.
    assert figures["wall"] >= 5.0
    assert 2.6 <= figures["awake"] <= figures["wall"] - 2.0


def test_without_a_suspension_it_is_the_wall_time() -> None:
    start = time.monotonic()
    with AwakeStopwatch(tick_s=0.05) as watch:
        time.sleep(0.6)
    assert watch.seconds == pytest.approx(time.monotonic() - start, abs=0.1)
    with pytest.raises(ValueError, match="0 < tick_s < suspended_after_s"):
        AwakeStopwatch(tick_s=5.0, suspended_after_s=1.0)
