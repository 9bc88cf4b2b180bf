"""Behaviour cloning (SFT) on action tokens: cross-entropy of the 7 action tokens of demonstration steps.

One loop, top to bottom: sample a minibatch (seeded numpy generator), augment images (random shift),
teacher-forced ``policy.score`` gives the token log-probs, optional KL(pi0 || pi) on the batch's states
("SFT + explicit KL"), AdamW step with warm-up + cosine schedule and gradient clipping, periodic
validation (loss, token accuracy on held-back demos), in-training evaluation and checkpoints.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from vla_razor.data.steps import StepData, random_shift
from vla_razor.trainers.checkpoint import save_checkpoint
from vla_razor.trainers.common import (
    NonFiniteLossError,
    TrainerSettings,
    action_targets,
    check_positive,
    grad_norm_and_clip,
    make_optimizer,
    token_kl,
    trainable_parameters,
)
from vla_razor.trainers.distributed import (
    DistInfo,
    all_reduce_gradients,
    all_reduce_mean,
    any_rank,
    broadcast_parameters,
)
from vla_razor.trainers.fsdp import full_backbone_state, load_optimizer_state, optimizer_state
from vla_razor.trainers.interrupts import InterruptFlag
from vla_razor.trainers.kl_monitor import Forecaster, KLMonitor, evenly_spaced
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import RngStreams, gather_rng_states

log = logging.getLogger(__name__)

Evaluator = Callable[[Any, int], dict[str, float]]


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

    _positive = ("minibatch_size", "num_iterations", "log_every")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("trainer.kl_coef", self.kl_coef, allow_zero=True)


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
    """Loss and action-token accuracy on held-back demos (no augmentation, deterministic order)."""
    was_training = policy.training
    policy.eval()
    totals = {"loss": 0.0, "token_accuracy": 0.0}
    count = 0
    for start in range(0, min(len(data), batch_size * max_batches), batch_size):
        index = np.arange(start, min(start + batch_size, len(data)))
        obs, instructions, actions = data.batch(index)
        _, metrics = bc_batch_loss(policy, obs, instructions, actions)
        for k in totals:
            totals[k] += metrics[k] * len(index)
        count += len(index)
    policy.train(was_training)
    return {k: v / max(count, 1) for k, v in totals.items()}


def train_bc(
    policy: Any,
    train_data: StepData,
    settings: BCSettings,
    run_dir: str | Path,
    config: Any,
    *,
    val_data: StepData | None = None,
    resume_state: dict[str, Any] | None = None,
    dist_info: DistInfo | None = None,
    evaluator: Evaluator | None = None,
    logger: MetricLogger | None = None,
    progress: bool = True,
    forecaster: Forecaster | None = None,
) -> dict[str, float]:
    """Run behaviour cloning for ``settings.num_iterations`` steps; returns the last logged metrics."""
    dist_info = dist_info or DistInfo()
    params = trainable_parameters(policy)
    broadcast_parameters(params, dist_info)
    optimizer, scheduler = make_optimizer(
        params,
        settings.lr,
        settings.weight_decay,
        settings.warmup_steps,
        settings.num_iterations,
        settings.min_lr_ratio,
    )
    # Each rank draws its own minibatches; the seed list makes the streams independent and reproducible.
    rng = np.random.default_rng([settings.seed, dist_info.rank])
    streams = RngStreams(numpy_generators={"data": rng})
    step = 0
    if resume_state is not None:
        load_optimizer_state(policy, optimizer, resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        step = int(resume_state["step"])
        streams.restore(resume_state["rng"][dist_info.rank])
        log.info("resumed behaviour cloning at step %d", step)
    logger = logger or MetricLogger(run_dir, enabled=dist_info.is_main)
    last: dict[str, float] = {}

    def state() -> dict[str, Any]:
        return {
            "trainer": "bc",
            "step": step,
            "optimizer": optimizer_state(policy, optimizer),
            "scheduler": scheduler.state_dict(),
            "rng": gather_rng_states(streams, dist_info),
            "settings": asdict(settings),
        }

    def checkpoint(metrics: dict[str, float] | None = None) -> None:
        rng_state = state()  # every rank takes part in gathering RNG states (and FSDP's gathers)
        backbone = full_backbone_state(policy)
        if dist_info.is_main:
            save_checkpoint(
                run_dir,
                step,
                policy=policy,
                trainer_state=rng_state,
                config=config,
                metrics=metrics,
                keep_last=settings.keep_last,
                backbone_state=backbone,
            )

    # BC has no rollouts of pi0: the probe takes new-task states from the demos.
    monitor = KLMonitor(settings, run_dir, dist_info, seed=settings.seed * 1000 + 999, forecaster=forecaster)
    monitor.ensure_probe(policy, functools.partial(demo_states, policy, train_data, settings.kl_states))
    interrupted = InterruptFlag()
    policy.train()
    bar = tqdm(
        total=settings.num_iterations,
        initial=step,
        desc="bc",
        unit="step",
        disable=not (progress and dist_info.is_main),
    )
    try:
        while step < settings.num_iterations:
            index = rng.integers(0, len(train_data), size=settings.minibatch_size)
            obs, instructions, actions = train_data.batch(index)
            loss, metrics = bc_batch_loss(
                policy,
                obs,
                instructions,
                actions,
                kl_coef=settings.kl_coef,
                shift_pad=settings.shift_pad,
                rng=rng,
            )
            # Decided over all ranks: a rank that stopped alone would hang the others' all-reduce.
            if any_rank(not torch.isfinite(loss), dist_info):
                checkpoint(last)
                raise NonFiniteLossError(
                    f"non-finite BC loss ({float(loss.detach())}) at step {step} (batch of demo steps {index[:8].tolist()}...); "
                    f"last good checkpoint saved in {Path(run_dir) / 'checkpoints'}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            all_reduce_gradients(params, dist_info)
            metrics["grad_norm"] = grad_norm_and_clip(params, settings.max_grad_norm)
            if not np.isfinite(metrics["grad_norm"]):  # the same on every rank (all-reduced gradients)
                checkpoint(last)
                raise NonFiniteLossError(
                    f"non-finite BC gradient norm at step {step}; last good checkpoint saved in "
                    f"{Path(run_dir) / 'checkpoints'}"
                )
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['token_accuracy']:.2f}")
            if step % settings.log_every == 0 or step == settings.num_iterations:
                metrics["lr"] = scheduler.get_last_lr()[0]
                last = all_reduce_mean(metrics, dist_info)
                logger.log(step, last, prefix="train/", summary=False)
            if (
                val_data is not None
                and settings.val_every
                and (step % settings.val_every == 0 or step == settings.num_iterations)
            ):
                val = all_reduce_mean(
                    validate(policy, val_data, settings.minibatch_size, settings.val_batches), dist_info
                )
                logger.log(step, val, prefix="val/")
                last.update({f"val_{k}": v for k, v in val.items()})
            saving = bool(settings.save_every and step % settings.save_every == 0)
            saving = saving or step == settings.num_iterations or bool(interrupted)
            if monitor.due(step, saving):
                kl = monitor.measure(policy)
                measured = monitor.metrics(kl)
                last.update(measured)
                logger.log(step, measured, prefix="train/", summary=False)
                if monitor.over_budget(kl, step):
                    break  # no checkpoint over budget: the last one written is the last under it
            if evaluator is not None and settings.eval_every and step % settings.eval_every == 0:
                last.update(evaluator(policy, step))
            if saving:
                checkpoint(last)
                monitor.last_under_budget = step
            if interrupted:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; checkpoint saved, resume with resume=true", step)
        raise
    finally:
        interrupted.restore()
        bar.close()
        logger.close()
    return last


def demo_states(policy: Any, data: StepData, n: int) -> Any:
    """``n`` demo states spread over the data set, as one PolicyBatch (no augmentation)."""
    index = evenly_spaced(len(data), n).numpy()
    obs, instructions, _ = data.batch(index)
    return policy.prepare(obs, instructions)
