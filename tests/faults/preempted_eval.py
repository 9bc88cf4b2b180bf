"""An evaluation in its own process under the CLI's preemption handling, for the SIGTERM test.

python -m tests.faults.preempted_eval PI0_DIR OUT_DIR TASK [TASK ...]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from tests.rollouts.interrupted_eval import SETTINGS, suite  # noqa: E402
from vla_razor.evaluation.runner import EvalConfig, run_suite  # noqa: E402
from vla_razor.preemption import exit_code_on_preemption  # noqa: E402
from vla_razor.rollouts import EnvPool  # noqa: E402

if __name__ == "__main__":
    pi0_dir, out_dir, *tasks = sys.argv[1:]
    with exit_code_on_preemption(), EnvPool(SETTINGS) as pool:
        run_suite(EvalConfig(pi0_dir, suite(tasks), out_dir, progress=False), [], pool)
