"""An evaluation run in its own process, for the tests that interrupt it (Ctrl-C, kill) and resume it.

    python -m tests.rollouts.interrupted_eval PI0_DIR OUT_DIR TASK [TASK ...]

Two workers with one slot each: two episodes in flight, so an interruption after the first finished
episodes lands while later ones are still running.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from vla_razor.evaluation.runner import EvalConfig, run_suite  # noqa: E402
from vla_razor.evaluation.suite_spec import SuiteSpec  # noqa: E402
from vla_razor.rollouts import EngineSettings, EnvPool  # noqa: E402

EPISODES = 6
SETTINGS = EngineSettings(num_workers=2, slots_per_worker=1)


def suite(tasks: list[str]) -> SuiteSpec:
    return SuiteSpec("interrupt", tasks[-1], tuple(tasks[:-1]), EPISODES, 100_000, 0, 1)


if __name__ == "__main__":
    # This process stands for a command in a terminal, where Ctrl-C raises KeyboardInterrupt. A test run
    # started in the background (`make test &`, a CI runner without job control) hands SIGINT down as
    # ignored, and Python then installs no handler: the Ctrl-C test would interrupt nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pi0_dir, out_dir, *tasks = sys.argv[1:]
    with EnvPool(SETTINGS) as pool:
        run_suite(EvalConfig(pi0_dir, suite(tasks), out_dir, progress=False), [], pool)
