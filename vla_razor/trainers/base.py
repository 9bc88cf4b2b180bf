"""What the training loop and a trainer agree on: the run the caller sets up, the context an update works
in, and the few methods a trainer supplies.

As in Stable-Baselines3's ``learn()`` (collect, log, train; each algorithm overrides ``train()``), the
loop (:func:`vla_razor.trainers.loop.run_training`) owns what is the same for every method: resume,
checkpoints, the KL monitor and its budget, in-training evaluation, non-finite losses, Ctrl-C and the
progress bar. A trainer supplies what one update is and how its metrics are logged:
- behaviour cloning (:mod:`~vla_razor.trainers.bc`): one gradient step on demonstrations;
- on-policy methods (:mod:`~vla_razor.trainers.on_policy`): one iteration, a fresh rollout of the current
  policy and then the method's update on it (PPO, RFT; DAgger's expert-labelled rollouts fit here too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch

from vla_razor.trainers.common import TrainerSettings
from vla_razor.trainers.distributed import DistInfo
from vla_razor.trainers.kl_monitor import Forecaster, KLMonitor
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import RngStreams

Metrics = dict[str, float]
# (policy, updates done) -> metrics: in-training evaluation, wired in by the command (trainers never
# import evaluation/).
Evaluator = Callable[[Any, int], Metrics]

S = TypeVar("S", bound=TrainerSettings)


@dataclass
class TrainingRun:
    """Where a run writes, and what the caller wires in around a trainer."""

    run_dir: Path
    """checkpoints, metrics.jsonl and the KL probe go here"""
    config: Any
    """the resolved config (DictConfig or dict) written into every checkpoint"""
    resume_state: dict[str, Any] | None = None
    """trainer_state.pt of the checkpoint to continue from (its policy is the one passed in)"""
    dist_info: DistInfo = field(default_factory=DistInfo)
    """this process's rank and the world size (one process: the default)"""
    evaluator: Evaluator | None = None
    """in-training evaluation, every ``settings.eval_every`` updates"""
    logger: MetricLogger | None = None
    """where metrics go (default: metrics.jsonl and TensorBoard in run_dir, rank 0 only)"""
    progress: bool = True
    """show a progress bar (rank 0)"""
    forecaster: Forecaster | None = None
    """forecast forgetting from each KL measurement"""

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        if self.dist_info is None:  # callers may pass dist_info=None for "one process"
            self.dist_info = DistInfo()


@dataclass
class StepContext(Generic[S]):
    """What an update works with, by name. The loop builds it once and advances ``step``."""

    policy: Any
    params: list[torch.nn.Parameter]
    """the trainable parameters, in the order the gradient all-reduce and clipping see them"""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    """stepped by the loop after each update"""
    settings: S
    dist_info: DistInfo
    logger: MetricLogger
    monitor: KLMonitor
    """the trainer gives it its new-task states (:meth:`KLMonitor.ensure_probe`); the loop measures"""
    step: int = 0
    """updates completed so far"""


class Trainer(ABC, Generic[S]):
    """One training method, as the loop sees it."""

    name: str
    """recorded as ``trainer`` in trainer_state.pt; a resume refuses another trainer's checkpoint"""
    unit: str
    """what one update is called in logs and the progress bar"""
    settings: S

    @abstractmethod
    def begin(self, ctx: StepContext[S]) -> RngStreams:
        """Set up for the first update; return the random streams the updates draw from (the loop
        checkpoints them and, on resume, restores them after this call)."""

    @abstractmethod
    def step(self, ctx: StepContext[S]) -> Metrics:
        """One update; returns its metrics on this rank. A non-finite loss or gradient raises
        :class:`~vla_razor.trainers.common.NonFiniteLossError` on every rank at once (decide it over all
        ranks) before the optimizer steps on it; the loop then saves the weights and re-raises."""

    @abstractmethod
    def report(self, ctx: StepContext[S], metrics: Metrics, kl: Metrics | None) -> Metrics:
        """Log an update's metrics and, when one was due, the KL measurement; return the run's latest
        metrics: what the next checkpoint records (with the evaluation's) and the run returns."""

    def progress(self, metrics: Metrics) -> dict[str, str]:
        """What the progress bar shows after an update."""
        return {}

    def checkpoint_state(self, ctx: StepContext[S]) -> dict[str, Any]:
        """Entries of trainer_state.pt beyond the loop's own."""
        return {}

    def summary(self) -> Metrics:
        """Metrics over the whole run, added to what it returns."""
        return {}
