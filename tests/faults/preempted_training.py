"""A training run in its own process, for the tests that preempt it by signal and resume it.

    python -m tests.faults.preempted_training RUN_DIR [resume]

The toy trainer of tests/trainers/test_loop.py, slowed down so a signal lands mid-run, under the CLI's
preemption handling (exit 75 once the checkpoint is saved). ``resume`` continues from the latest checkpoint,
as ``vla-razor train ... resume=true`` does.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from tests.trainers.test_loop import Toy, ToySettings
from tests.trainers.tiny_policy import tiny_policy_cfg
from vla_razor.policies import build_policy, load_policy
from vla_razor.preemption import exit_code_on_preemption
from vla_razor.trainers.base import Metrics, StepContext, TrainingRun
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.loop import run_training

SETTINGS = ToySettings(num_iterations=12, save_every=6)  # a preemption lands off the save schedule
STEP_SECONDS = 0.2


class SlowToy(Toy):
    def step(self, ctx: StepContext[ToySettings]) -> Metrics:
        time.sleep(STEP_SECONDS)
        return super().step(ctx)


def train(run_dir: Path, resume: bool) -> None:
    if resume:
        ckpt = load_checkpoint(run_dir)
        policy, state = load_policy(ckpt.policy_dir), ckpt.trainer_state
    else:
        policy, state = build_policy(tiny_policy_cfg()), None
    run_training(SlowToy(SETTINGS), policy, TrainingRun(run_dir, {}, resume_state=state, progress=False))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    with exit_code_on_preemption():
        train(Path(sys.argv[1]), resume=sys.argv[2:] == ["resume"])
