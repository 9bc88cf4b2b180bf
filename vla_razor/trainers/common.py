"""Pieces every trainer shares: the settings every trainer has, optimizer + schedule, action-token targets,
the per-token KL to the reference policy, gradient clipping, and the non-finite-loss error."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch.distributed.tensor import DTensor

from vla_razor.errors import BadInputError, UserError
from vla_razor.trainers.fsdp import clip_grad_norm

MONITOR_SETTINGS = ("kl_every", "kl_states", "kl_budget", "forecast_calibration")


class NonFiniteLossError(UserError):
    """Raised when a loss is NaN/inf; the training loop saves the last good weights before passing it on."""


@dataclass(kw_only=True)
class TrainerSettings:
    """Base of the trainers' settings dataclasses: built from a hydra mapping, validated on creation.

    The dataclasses are the one source of every default (each is also registered with hydra as the
    schema of ``configs/trainer/<name>.yaml``, see :mod:`vla_razor.schemas`); a key they do not declare
    is a typo, never something to drop silently. The fields here are the ones every trainer has, each
    declared once: a trainer's own dataclass only sets the defaults that differ (its name, learning rate,
    budget and checkpoint cadence have none shared) and adds its own settings. One "update" below is a
    gradient step for BC and a collect-and-update iteration for PPO and RFT.
    """

    name: str
    """the trainer's name in configs and checkpoints"""
    lr: float
    """learning rate of AdamW (BC: the peak of its warm-up + cosine schedule; PPO, RFT: constant)"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    num_iterations: int
    """the training budget: updates"""
    minibatch_size: int = 32
    """samples per gradient step (BC: demonstration steps; PPO: rollout steps; RFT: kept steps)"""
    max_grad_norm: float = 1.0
    """the maximum global gradient norm (0: no clipping)"""
    save_every: int
    """checkpoint every N updates (and at the end)"""
    save_at: list[int] | None = None
    """checkpoint at these updates too, e.g. log-spaced [20, 60, 200, 600, 2000] (null: none)"""
    keep_last: int | None = 3
    """checkpoints kept on disk (null: all)"""
    eval_every: int = 0
    """in-training rollouts on the new task every N updates (0: off)"""
    seed: int = 0
    """seed of the trainer's random streams (train.yaml sets it to the run's seed)"""
    gradient_checkpointing: bool = False
    """recompute the decoder's activations during the backward pass instead of keeping them (HF's
    gradient_checkpointing_enable): less memory per sample, about one more forward pass of compute"""
    fused_optimizer: bool = False
    """AdamW's fused implementation (one kernel over all parameters instead of one per tensor); the same
    update to float rounding"""

    # Measure forward KL(pi0 || pi) on cached new-task states every N updates (PPO/RFT) or steps (BC),
    # and at every checkpoint; 0 turns the monitor off. One teacher-forced pass over the cached states.
    kl_every: int = 0
    # How many new-task states the monitor caches (PPO/RFT: from pi0's first rollout; BC: from the demos).
    kl_states: int = 64
    # Stop before forward KL(pi0 || pi) exceeds this many nats: no checkpoint over budget is written, and
    # kl_budget.json records where the run stopped. Needs kl_every > 0.
    kl_budget: float | None = None
    # A forecast calibration (JSON written by `vla-razor forecast results=DIR`, fitted on evaluated
    # checkpoints of a suite whose new task this run trains on, from the same pi0). With kl_every > 0,
    # every KL measurement also logs the forecast forgetting and its 90% prediction interval. (BC's monitor
    # measures on demo states, not on pi0's rollouts as the calibration did: indicative only.)
    forecast_calibration: str | None = None

    _positive: ClassVar[tuple[str, ...]] = ()  # the trainer's own settings that must be > 0

    def __post_init__(self) -> None:
        self._check()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        # The KL monitor's settings are listed last: a typo is most likely in the trainer's own.
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        valid = [n for n in names if n not in MONITOR_SETTINGS] + [n for n in names if n in MONITOR_SETTINGS]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise BadInputError(
                f"unknown trainer setting(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(valid)}"
            )
        return cls(**values)

    def lr_schedule(self) -> tuple[int, float]:
        """(warm-up steps, final learning rate / lr) of the schedule; constant unless a trainer says so."""
        return 0, 1.0

    def saves_at(self, update: int) -> bool:
        """Whether ``update`` is on the run's checkpoint schedule."""
        return on_save_schedule(update, self.num_iterations, self.save_every, self.save_at)

    def _check(self) -> None:
        check_positive("trainer.lr", self.lr)
        if self.save_at is not None:
            steps = list(self.save_at)
            if not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 < s <= self.num_iterations for s in steps
            ):
                raise BadInputError(
                    f"trainer.save_at={steps!r} must list updates between 1 and num_iterations={self.num_iterations}"
                )
        if self.kl_budget is not None:
            check_positive("trainer.kl_budget", self.kl_budget)
            if self.kl_every <= 0:
                raise BadInputError(
                    f"trainer.kl_budget={self.kl_budget} needs trainer.kl_every > 0 (how often to measure "
                    f"the KL), got kl_every={self.kl_every}"
                )
        if self.forecast_calibration is not None and self.kl_every <= 0:
            raise BadInputError(
                f"trainer.forecast_calibration={self.forecast_calibration!r} needs trainer.kl_every > 0 (the "
                "forecast is made from each KL measurement)"
            )
        if not isinstance(self.kl_every, int) or self.kl_every < 0:
            raise BadInputError(f"trainer.kl_every must be an integer >= 0, got {self.kl_every!r}")
        if self.kl_every and (not isinstance(self.kl_states, int) or self.kl_states <= 0):
            raise BadInputError(f"trainer.kl_states must be > 0 when kl_every > 0, got {self.kl_states!r}")
        for name in self._positive:
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise BadInputError(f"trainer.{name} must be > 0, got {value!r}")


def on_save_schedule(update: int, total: int, save_every: int | None, save_at: list[int] | None) -> bool:
    """A run's checkpoint schedule: every ``save_every`` updates, at each of ``save_at``, and at the end."""
    return (
        update == total or (bool(save_every) and update % int(save_every) == 0) or update in (save_at or ())
    )


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not isinstance(value, int | float) or not math.isfinite(value) or not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise BadInputError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def trainable_parameters(policy: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise BadInputError(
            "the policy has no trainable parameters (LoRA targets matched nothing, or all frozen)"
        )
    return params


def make_optimizer(
    params: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.1,
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (``fused``: its one-kernel implementation) with linear warm-up then cosine decay to
    ``min_lr_ratio * lr`` over ``total_steps``."""
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    # fused=None, not False, when off: torch then picks its default (foreach) implementation.
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True if fused else None)

    def factor(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def action_targets(policy: Any, actions: np.ndarray) -> torch.Tensor:
    """Expert actions (env scale) -> the policy's action token ids, through its own normalisation stats."""
    return policy.encode_actions(np.asarray(actions, dtype=np.float32))


def token_kl(ref_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(ref || current) per token over the 256 action bins, summed over the action tokens: [B]."""
    ref_logp = torch.log_softmax(ref_logits.float(), dim=-1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1).sum(dim=-1)


def grad_norm_and_clip(params: list[torch.nn.Parameter], max_norm: float) -> float:
    if any(isinstance(p, DTensor) for p in params):
        return clip_grad_norm(params, max_norm)  # FSDP: the norm spans every rank's shards
    if max_norm and max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.norm(torch.stack(norms))) if norms else 0.0
