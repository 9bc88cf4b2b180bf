"""Behaviour cloning (SFT) on action tokens: cross-entropy of the 7 action tokens of demonstration steps.

Each update: sample a minibatch (seeded numpy generator), augment images (random shift),
teacher-forced ``policy.score`` gives the token log-probs, optional KL(pi0 || pi) on the batch's states
("SFT + explicit KL"), AdamW step with warm-up + cosine schedule and gradient clipping; periodic
validation (loss, token accuracy on held-back demos). The shared loop (:mod:`.loop`) adds in-training
evaluation, the KL monitor and checkpoints.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.data.steps import StepData, random_shift
from vla_razor.errors import BadInputError
from vla_razor.trainers.base import Metrics, StepContext, Trainer, TrainingRun
from vla_razor.trainers.common import (
    NonFiniteLossError,
    TrainerSettings,
    action_targets,
    check_positive,
    grad_norm_and_clip,
    token_kl,
)
from vla_razor.trainers.distributed import all_reduce_gradients, all_reduce_mean, any_rank
from vla_razor.trainers.kl_monitor import evenly_spaced
from vla_razor.trainers.loop import run_training
from vla_razor.trainers.rng import RngStreams

log = logging.getLogger(__name__)

TASK_SAMPLING = ("steps", "tasks")


@dataclass(kw_only=True)
class BCSettings(TrainerSettings):
    """Behaviour cloning on action tokens: the one source of its defaults (configs/trainer/bc.yaml and
    bc_kl.yaml only override). The settings every trainer has are documented on TrainerSettings; BC's
    name is bc, or bc_kl (BC with a KL penalty), and its updates are gradient steps."""

    name: str = "bc"
    lr: float = 3e-4
    weight_decay: float = 0.01
    minibatch_size: int = 64
    num_iterations: int = 2000
    save_every: int = 500

    warmup_steps: int = 100
    """linear learning-rate warm-up steps, followed by a cosine decay"""
    min_lr_ratio: float = 0.1
    """the cosine decay ends at min_lr_ratio * lr"""
    shift_pad: int = 4
    """random-shift image augmentation in pixels (0: off)"""
    kl_coef: float = 0.0
    """weight of KL(pi0 || pi) on the batch's states (0: plain SFT)"""
    log_every: int = 20
    """log training metrics every N steps"""
    val_every: int = 200
    """validation loss on held-back demos every N steps (0: never)"""
    val_batches: int = 8
    """minibatches per validation"""
    task_sampling: str = "steps"
    """how minibatches weigh the demos' tasks: "steps" (every demo step equally likely, so long tasks
    dominate) or "tasks" (every instruction equally likely, then a step of it)"""

    _positive = ("minibatch_size", "num_iterations", "log_every")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("trainer.kl_coef", self.kl_coef, allow_zero=True)
        if self.task_sampling not in TASK_SAMPLING:
            raise BadInputError(
                f"trainer.task_sampling={self.task_sampling!r} is not one of {list(TASK_SAMPLING)}"
            )

    def lr_schedule(self) -> tuple[int, float]:
        return self.warmup_steps, self.min_lr_ratio


def bc_batch_loss(
    policy: Any,
    obs: dict[str, np.ndarray],
    instructions: list[str],
    actions: np.ndarray,
    *,
    kl_coef: float = 0.0,
    shift_pad: int = 0,
    rng: np.random.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on the action tokens of one minibatch (+ optional KL to pi0); returns loss, metrics."""
    if shift_pad and rng is not None:
        obs = {k: random_shift(v, shift_pad, rng) if k.endswith("_image") else v for k, v in obs.items()}
    batch = policy.prepare(obs, instructions)
    targets = action_targets(policy, actions).to(_device(policy))
    scored = policy.score(batch, targets)
    nll = -scored.token_log_probs.mean()
    loss = nll
    slots = policy.action_tokenizer.ids_to_bin_slots(targets)
    accuracy = (
        (scored.logits.argmax(dim=-1) == torch.as_tensor(slots, device=scored.logits.device)).float().mean()
    )
    metrics = {"loss": float(nll.detach()), "token_accuracy": float(accuracy)}
    if kl_coef > 0:
        with torch.no_grad(), policy.reference():
            ref = policy.score(batch, targets)
        kl = token_kl(ref.logits, scored.logits).mean()
        loss = loss + kl_coef * kl
        metrics["kl_to_pi0"] = float(kl.detach())
    return loss, metrics


def _device(policy: Any) -> torch.device:
    return next(policy.parameters()).device


@torch.no_grad()
def validate(policy: Any, data: StepData, batch_size: int, max_batches: int) -> dict[str, float]:
    """Loss and action-token accuracy on up to ``batch_size * max_batches`` demo steps spread evenly over
    ``data`` (every episode phase, not the first few demos), without augmentation: the same estimator for
    the held-back demos and the training demos, so the two losses compare."""
    was_training = policy.training
    policy.eval()
    totals = {"loss": 0.0, "token_accuracy": 0.0}
    count = 0
    sample = evenly_spaced(len(data), batch_size * max_batches).numpy()
    for start in range(0, len(sample), batch_size):
        index = sample[start : start + batch_size]
        obs, instructions, actions = data.batch(index)
        _, metrics = bc_batch_loss(policy, obs, instructions, actions)
        for k in totals:
            totals[k] += metrics[k] * len(index)
        count += len(index)
    policy.train(was_training)
    return {k: v / max(count, 1) for k, v in totals.items()}


def minibatch_sampler(data: StepData, task_sampling: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    """A function (generator, size) -> demo-step indices, weighing tasks as ``task_sampling`` says."""
    if task_sampling == "steps":
        return lambda rng, size: rng.integers(0, len(data), size=size)
    # One index array per instruction that has steps: tasks equally likely whatever their lengths.
    groups = [np.flatnonzero(data.instruction_ids == i) for i in range(len(data.instructions))]
    groups = [g for g in groups if len(g)]

    def by_task(rng: np.random.Generator, size: int) -> np.ndarray:
        tasks = rng.integers(0, len(groups), size=size)
        within = rng.random(size)
        return np.array([groups[t][int(u * len(groups[t]))] for t, u in zip(tasks, within, strict=True)])

    return by_task


class BehaviourCloning(Trainer[BCSettings]):
    """One update: a minibatch of demo steps (augmented), the token cross-entropy (+ KL to pi0), one
    AdamW step."""

    name = "bc"  # bc_kl too: the same trainer and checkpoints (its settings say which)
    unit = "step"
    rng: np.random.Generator  # built by begin(): one stream per rank

    def __init__(self, settings: BCSettings, train_data: StepData, val_data: StepData | None = None) -> None:
        self.settings = settings
        self.train_data = train_data
        self.val_data = val_data
        self.sample_index = minibatch_sampler(train_data, settings.task_sampling)
        # The latest training, validation and KL metrics: each is logged on its own schedule. The loop
        # adds the in-training evaluation's to it, as the run's latest metrics.
        self.last: Metrics = {}

    def begin(self, ctx: StepContext[BCSettings]) -> RngStreams:
        # Each rank draws its own minibatches; the seed list makes the streams independent and reproducible.
        self.rng = np.random.default_rng([self.settings.seed, ctx.dist_info.rank])
        # BC has no rollouts of pi0: the probe takes new-task states from the demos.
        make_batch = functools.partial(demo_states, ctx.policy, self.train_data, self.settings.kl_states)
        ctx.monitor.ensure_probe(ctx.policy, make_batch)
        ctx.policy.train()
        return RngStreams(numpy_generators={"data": self.rng})

    def step(self, ctx: StepContext[BCSettings]) -> Metrics:
        settings, params = self.settings, ctx.params
        index = self.sample_index(self.rng, settings.minibatch_size)
        obs, instructions, actions = self.train_data.batch(index)
        loss, metrics = bc_batch_loss(
            ctx.policy,
            obs,
            instructions,
            actions,
            kl_coef=settings.kl_coef,
            shift_pad=settings.shift_pad,
            rng=self.rng,
        )
        # Decided over all ranks: a rank that stopped alone would hang the others' all-reduce.
        if any_rank(not torch.isfinite(loss), ctx.dist_info):
            raise NonFiniteLossError(
                f"non-finite BC loss ({float(loss.detach())}) at step {ctx.step} (batch of demo steps "
                f"{index[:8].tolist()}...)"
            )
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(params, ctx.dist_info)
        metrics["grad_norm"] = grad_norm_and_clip(params, settings.max_grad_norm)
        if not np.isfinite(metrics["grad_norm"]):  # the same on every rank (all-reduced gradients)
            raise NonFiniteLossError(f"non-finite BC gradient norm at step {ctx.step}")
        ctx.optimizer.step()
        return metrics

    def report(self, ctx: StepContext[BCSettings], metrics: Metrics, kl: Metrics | None) -> Metrics:
        """Training metrics every ``log_every`` steps, validation every ``val_every``, each KL
        measurement on its own line; returns the latest of each. At every checkpoint all of them run, and
        the loss on the training demos too (``train_demos_*``, the held-back demos' estimator): a study
        reads over- and under-fitting from each checkpoint's record."""
        settings, step, logger = self.settings, ctx.step, ctx.logger
        final = step == settings.num_iterations
        checkpoint = settings.saves_at(step)
        if step % settings.log_every == 0 or final or checkpoint:
            metrics["lr"] = ctx.scheduler.get_last_lr()[0]
            self.last = all_reduce_mean(metrics, ctx.dist_info)
            logger.log(step, self.last, prefix="train/", summary=False)
        if self.val_data is not None and (
            checkpoint or (settings.val_every and step % settings.val_every == 0)
        ):
            val = validate(ctx.policy, self.val_data, settings.minibatch_size, settings.val_batches)
            val = all_reduce_mean(val, ctx.dist_info)
            logger.log(step, val, prefix="val/")
            self.last.update({f"val_{k}": v for k, v in val.items()})
        if checkpoint:
            fit = validate(ctx.policy, self.train_data, settings.minibatch_size, settings.val_batches)
            fit = all_reduce_mean(fit, ctx.dist_info)
            logger.log(step, fit, prefix="train_demos/")
            self.last.update({f"train_demos_{k}": v for k, v in fit.items()})
            # Which step both losses belong to: a checkpoint written on an interruption carries older ones.
            self.last["demo_losses_step"] = step
        if kl is not None:
            self.last.update(kl)
            logger.log(step, kl, prefix="train/", summary=False)
        return self.last

    def progress(self, metrics: Metrics) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.3f}", "acc": f"{metrics['token_accuracy']:.2f}"}


def train_bc(
    policy: Any,
    train_data: StepData,
    settings: BCSettings,
    run_dir: str | Path,
    config: Any,
    *,
    val_data: StepData | None = None,
    **options: Any,
) -> dict[str, float]:
    """Run behaviour cloning for ``settings.num_iterations`` steps; ``options`` are the rest of
    :class:`~vla_razor.trainers.base.TrainingRun` (resume_state, dist_info, evaluator, logger, progress,
    forecaster). Returns the last logged metrics."""
    trainer = BehaviourCloning(settings, train_data, val_data)
    return run_training(trainer, policy, TrainingRun(Path(run_dir), config, **options))


def demo_states(policy: Any, data: StepData, n: int) -> Any:
    """``n`` demo states spread over the data set, as one PolicyBatch (no augmentation)."""
    index = evenly_spaced(len(data), n).numpy()
    obs, instructions, _ = data.batch(index)
    return policy.prepare(obs, instructions)
