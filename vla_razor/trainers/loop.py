"""The one training loop: BC, PPO and RFT run through it, each supplying its update (:mod:`.base`).

Per update, in this order: the trainer's step; the learning-rate schedule; the KL monitor when due; the
trainer's report (its logs); the KL budget, which stops before a checkpoint over it; in-training
evaluation; the checkpoint; and a stop request (Ctrl-C, or a scheduler's SIGTERM/SIGUSR1), which stops
after that checkpoint. Everything a resume needs is
in the checkpoint (weights, optimizer, scheduler, every RNG stream of every rank), so a resumed run
continues exactly as an uninterrupted one would have.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vla_razor.preemption import Preempted
from vla_razor.trainers.base import Metrics, S, StepContext, Trainer, TrainingRun
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.trainers.common import NonFiniteLossError, make_optimizer, trainable_parameters
from vla_razor.trainers.distributed import any_rank, broadcast_parameters
from vla_razor.trainers.fsdp import full_backbone_state, load_optimizer_state, optimizer_state
from vla_razor.trainers.interrupts import InterruptFlag
from vla_razor.trainers.kl_monitor import KLMonitor
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import RngStreams, gather_rng_states

log = logging.getLogger(__name__)


def run_training(trainer: Trainer[S], policy: Any, run: TrainingRun) -> Metrics:
    """Train ``policy`` for ``trainer.settings.num_iterations`` updates (fewer when the KL budget stops
    it); returns the last logged metrics."""
    settings = trainer.settings
    total = settings.num_iterations
    ctx = _context(trainer, policy, run)
    streams = trainer.begin(ctx)
    if run.resume_state is not None:
        _resume(ctx, streams, run.resume_state, trainer)
    checkpoint = _Checkpointer(trainer, ctx, run, streams)
    interrupted = InterruptFlag()
    bar = tqdm(
        total=total,
        initial=ctx.step,
        desc=trainer.name,
        unit=trainer.unit,
        disable=not (run.progress and ctx.dist_info.is_main),
    )
    last: Metrics = {}
    try:
        while ctx.step < total:
            try:
                metrics = trainer.step(ctx)
            except NonFiniteLossError as err:
                # Every rank raises together. The weights are still finite (the bad step was never
                # taken), but they may sit part-way through an iteration's update; the checkpoint says
                # so (`nonfinite` in its trainer state), and a resume from it is not bit-exact.
                path = checkpoint.save(last, nonfinite=str(err))
                raise NonFiniteLossError(f"{err}; last good weights saved in {path}") from None
            ctx.scheduler.step()
            ctx.step += 1
            # Read once, so the checkpoint and the exit below agree; and over all ranks, so a signal that
            # reached one rank first never leaves the others in the checkpoint's gathers without it.
            stopping = any_rank(bool(interrupted), ctx.dist_info)
            saving = settings.saves_at(ctx.step) or stopping
            kl = None
            if ctx.monitor.due(ctx.step, saving):
                kl = ctx.monitor.metrics(ctx.monitor.measure(policy))  # the mean over ranks
            last = trainer.report(ctx, metrics, kl)
            bar.update(1)
            bar.set_postfix(trainer.progress(metrics))
            if kl is not None and ctx.monitor.over_budget(kl["forward_kl_pi0"], ctx.step):
                break  # no checkpoint over budget: the last one written is the last under it
            if run.evaluator is not None and settings.eval_every and ctx.step % settings.eval_every == 0:
                last.update(run.evaluator(policy, ctx.step))
            if saving:
                checkpoint.save(last)
                ctx.monitor.last_under_budget = ctx.step
            if stopping:
                raise interrupted.stop()
    except KeyboardInterrupt as stop:
        why = stop if isinstance(stop, Preempted) else "interrupted"
        log.warning("%s at %s %d; checkpoint saved, resume with resume=true", why, trainer.unit, ctx.step)
        raise
    finally:
        interrupted.restore()
        bar.close()
        ctx.logger.close()
    last.update(trainer.summary())
    return last


def _context(trainer: Trainer[S], policy: Any, run: TrainingRun) -> StepContext[S]:
    settings = trainer.settings
    params = trainable_parameters(policy)
    broadcast_parameters(params, run.dist_info)  # every rank starts from rank 0's weights
    if settings.gradient_checkpointing:
        policy.enable_gradient_checkpointing()
    warmup, final_ratio = settings.lr_schedule()
    optimizer, scheduler = make_optimizer(
        params,
        settings.lr,
        settings.weight_decay,
        warmup,
        settings.num_iterations,
        final_ratio,
        fused=settings.fused_optimizer,
    )
    return StepContext(
        policy=policy,
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        settings=settings,
        dist_info=run.dist_info,
        logger=run.logger or MetricLogger(run.run_dir, enabled=run.dist_info.is_main),
        # Its own seed: measuring never draws from the training streams.
        monitor=KLMonitor(
            settings, run.run_dir, run.dist_info, seed=settings.seed * 1000 + 999, forecaster=run.forecaster
        ),
    )


def _resume(ctx: StepContext[S], streams: RngStreams, state: dict[str, Any], trainer: Trainer[S]) -> None:
    load_optimizer_state(ctx.policy, ctx.optimizer, state["optimizer"])
    ctx.scheduler.load_state_dict(state["scheduler"])
    ctx.step = int(state["step"])
    streams.restore(state["rng"][ctx.dist_info.rank])
    log.info("resumed %s at %s %d", trainer.name, trainer.unit, ctx.step)


class _Checkpointer:
    """Writes the run's checkpoints: the policy, config and metrics, and the trainer state a resume
    reads (optimizer, scheduler, every rank's RNG streams, the update count, the settings)."""

    def __init__(
        self, trainer: Trainer[S], ctx: StepContext[S], run: TrainingRun, streams: RngStreams
    ) -> None:
        self.trainer = trainer
        self.ctx = ctx
        self.run = run
        self.streams = streams

    def save(self, metrics: Metrics, nonfinite: str | None = None) -> Path | None:
        """Every rank must call it (it gathers); rank 0 writes. Returns the checkpoint folder on rank 0."""
        ctx = self.ctx
        # Gathers run on every rank (RNG states; with FSDP the weights and optimizer moments too).
        backbone = full_backbone_state(ctx.policy)
        state = {
            "trainer": self.trainer.name,
            "step": ctx.step,
            "optimizer": optimizer_state(ctx.policy, ctx.optimizer),
            "scheduler": ctx.scheduler.state_dict(),
            "rng": gather_rng_states(self.streams, ctx.dist_info),
            "settings": asdict(ctx.settings),
            "nonfinite": nonfinite,
            **self.trainer.checkpoint_state(ctx),
        }
        if not ctx.dist_info.is_main:
            return None
        return save_checkpoint(
            self.run.run_dir,
            ctx.step,
            policy=ctx.policy,
            trainer_state=state,
            config=self.run.config,
            metrics=metrics,
            keep_last=ctx.settings.keep_last,
            backbone_state=backbone,
        )
