"""Pieces every trainer shares: settings validation, optimizer + schedule, action-token targets,
the per-token KL to the reference policy, and non-finite-loss handling."""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Self

import numpy as np
import torch

from vla_razor.errors import BadInputError, UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """Raised when a loss is NaN/inf; the trainer saves the last good checkpoint before raising."""


class TrainerSettings:
    """Mixin for the trainers' settings dataclasses: built from a hydra mapping, validated on creation.

    The dataclass is the one source of every default (it is also registered with hydra as the schema of
    ``configs/trainer/<name>.yaml``, see :mod:`vla_razor.schemas`); a key it does not declare is a typo,
    never something to drop silently.
    """

    # Declared by every trainer's dataclass (annotations only here: they are not dataclass fields).
    name: str
    lr: float
    eval_every: int
    seed: int
    _positive: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        valid = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise BadInputError(
                f"unknown trainer setting(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(valid)}"
            )
        return cls(**values)

    def _check(self) -> None:
        check_positive("trainer.lr", self.lr)
        for name in self._positive:
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise BadInputError(f"trainer.{name} must be > 0, got {value!r}")


class InterruptFlag:
    """Turns the first Ctrl-C into a flag checked between steps, so a checkpoint is never torn."""

    def __init__(self) -> None:
        self.fired = False
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread (e.g. some test runners): keep default behaviour
            self._previous = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.fired:  # second Ctrl-C: stop right away
            raise KeyboardInterrupt
        self.fired = True
        log.warning("Ctrl-C: finishing this step, saving a checkpoint, then exiting (press again to abort)")

    def __bool__(self) -> bool:
        return self.fired

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


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
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with linear warm-up then cosine decay to ``min_lr_ratio * lr`` over ``total_steps``."""
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, allow_zero=True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

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
    if max_norm and max_norm > 0:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.norm(torch.stack(norms))) if norms else 0.0
