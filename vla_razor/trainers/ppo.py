"""PPO for VLA policies (RL4VLA-style attachment, CleanRL-style loop).

Per update: reset the envs with seeds derived from (seed, rank, update); sample action tokens at
temperature 1 from the 256 action ids (joint log-prob = sum over the 7 tokens; value from the head on
the hidden state before the first action token); GAE that bootstraps truncation but not termination;
then a few epochs of minibatch updates of the clipped surrogate + clipped value loss - entropy bonus
(+ optional KL(pi0 || pi) penalty), with advantage normalisation, gradient clipping and a target_kl
early stop. Reward is binary success by default (as in RL's Razor), robosuite's shaped reward optional.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError
from vla_razor.rollouts import Rollout
from vla_razor.trainers.base import StepContext, TrainingRun
from vla_razor.trainers.common import NonFiniteLossError, check_positive, grad_norm_and_clip, token_kl
from vla_razor.trainers.distributed import all_reduce_gradients, any_rank, max_over_ranks, mean_over_ranks
from vla_razor.trainers.gae import compute_gae
from vla_razor.trainers.loop import run_training
from vla_razor.trainers.on_policy import OnPolicy, OnPolicySettings, update_seeds

log = logging.getLogger(__name__)

__all__ = ["PPOSettings", "ppo_update", "train_ppo", "update_seeds"]


@dataclass(kw_only=True)
class PPOSettings(OnPolicySettings):
    """PPO on action tokens: the one source of its defaults (configs/trainer/ppo.yaml only overrides).
    The settings every trainer has are documented on TrainerSettings, the on-policy ones on
    OnPolicySettings."""

    name: str = "ppo"
    lr: float = 2e-5
    num_iterations: int = 50
    save_every: int = 10

    gamma: float = 0.99
    """the discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """clip the value loss as PPO clips the surrogate"""
    vf_coef: float = 0.5
    """weight of the value loss"""
    ent_coef: float = 0.0
    """weight of the entropy bonus"""
    target_kl: float | None = 0.1
    """stop an iteration's epochs once approx KL(old || new) exceeds it (null: never)"""
    norm_adv: bool = True
    """normalise advantages per minibatch"""
    skip_unrewarded: bool = True
    """a rollout with no reward at all updates the critic only (no signal for the policy)"""
    kl_coef: float = 0.0
    """weight of a KL(pi0 || pi) penalty (0: pure PPO, as in RL's Razor)"""
    recompute_logprobs: bool = True
    """recompute the behaviour log-probs with the update's teacher-forced pass before the epochs: cached
    token-by-token decoding differs from a full pass in bf16 on a 7B model (0.12-0.15 nats on an H200),
    which would inflate the first epoch's clipping"""
    reward: str = "binary"
    """binary (success) or shaped (robosuite's dense reward + success)"""
    micro_batch_size: int | None = None
    """split each minibatch into passes of this many samples whose gradients add up to the minibatch's
    (the same update, with the activations of one micro-batch in memory at a time); null: one pass"""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("trainer.kl_coef", self.kl_coef, allow_zero=True)
        if self.micro_batch_size is not None and (
            not isinstance(self.micro_batch_size, int)
            or isinstance(self.micro_batch_size, bool)
            or self.micro_batch_size < 1
        ):
            raise BadInputError(
                f"trainer.micro_batch_size must be a positive integer or null (whole minibatch), "
                f"got {self.micro_batch_size!r}"
            )
        if self.reward not in {"binary", "shaped"}:
            raise BadInputError(f"trainer.reward must be 'binary' or 'shaped', got {self.reward!r}")


@torch.no_grad()
def behaviour_log_probs(
    policy: Any, batch: Any, tokens: torch.Tensor, chunk: int, temperature: float
) -> torch.Tensor:
    """Joint log-probs [N] of the sampled tokens under the current (pre-update) policy, from the same
    teacher-forced pass the update uses, in eval mode as when the tokens were sampled."""
    policy.eval()
    device = policy.device
    out = []
    for start in range(0, len(tokens), chunk):
        idx = torch.arange(start, min(start + chunk, len(tokens)))
        scored = policy.score(batch[idx].to(device), tokens[idx].to(device), temperature=temperature)
        out.append(scored.log_prob.float().cpu())
    return torch.cat(out)


@dataclass
class MinibatchData:
    """One minibatch of a rollout, on the CPU: inputs, sampled tokens, and what the update compares to."""

    batch: Any
    tokens: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor  # already normalised when norm_adv is on
    old_values: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return len(self.tokens)

    def part(self, idx: torch.Tensor) -> MinibatchData:
        return MinibatchData(
            self.batch[idx],
            self.tokens[idx],
            self.old_logp[idx],
            self.advantages[idx],
            self.old_values[idx],
            self.returns[idx],
        )


def ppo_loss(
    policy: Any, settings: PPOSettings, data: MinibatchData, pg_active: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped PPO loss of ``data`` (a mean over its samples) and its metrics (means too)."""
    device = next(policy.parameters()).device
    mb_tokens = data.tokens.to(device)
    mb = data.batch.to(device)
    # Score under the sampling temperature: the ratio must compare the same distributions.
    scored = policy.score(mb, mb_tokens, temperature=settings.temperature)
    logratio = scored.log_prob.float() - data.old_logp.to(device)
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()  # Schulman's k3 estimator of KL(old || new)
        clipfrac = ((ratio - 1).abs() > settings.clip_coef).float().mean()
    mb_adv = data.advantages.to(device)
    pg_loss = torch.max(
        -mb_adv * ratio, -mb_adv * ratio.clamp(1 - settings.clip_coef, 1 + settings.clip_coef)
    ).mean()
    new_v = scored.value.float()
    mb_ret = data.returns.to(device)
    if settings.clip_vloss:
        old_v = data.old_values.to(device)
        v_clipped = old_v + (new_v - old_v).clamp(-settings.clip_coef, settings.clip_coef)
        v_loss = 0.5 * torch.max((new_v - mb_ret) ** 2, (v_clipped - mb_ret) ** 2).mean()
    else:
        v_loss = 0.5 * ((new_v - mb_ret) ** 2).mean()
    entropy = scored.entropy.float().mean()
    if pg_active:
        loss = pg_loss - settings.ent_coef * entropy + settings.vf_coef * v_loss
    else:
        loss = settings.vf_coef * v_loss
    metrics = {
        "pg_loss": pg_loss,
        "v_loss": v_loss,
        "entropy": entropy,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }
    if settings.kl_coef > 0:
        with torch.no_grad(), policy.reference():
            ref_logits = policy.score(mb, mb_tokens, temperature=settings.temperature).logits
        kl = token_kl(ref_logits, scored.logits).mean()
        loss = loss + settings.kl_coef * kl
        metrics["kl_to_pi0"] = kl
    return loss, metrics


def accumulate_minibatch(
    policy: Any, settings: PPOSettings, data: MinibatchData, pg_active: bool
) -> dict[str, float]:
    """Backpropagate the minibatch's loss in micro-batches of ``settings.micro_batch_size`` samples
    (gradients add up in ``.grad``), each weighted by its share of the minibatch: the gradient is the
    whole minibatch's. Returns the minibatch's ``loss`` and metrics (means over its samples)."""
    size = settings.micro_batch_size or len(data)
    totals: dict[str, float] = {}
    for start in range(0, len(data), size):
        idx = torch.arange(start, min(start + size, len(data)))
        weight = len(idx) / len(data)
        loss, metrics = ppo_loss(policy, settings, data.part(idx), pg_active)
        (loss * weight).backward()
        for key, value in {"loss": loss, **metrics}.items():
            totals[key] = totals.get(key, 0.0) + weight * float(value.detach())
    return totals


def ppo_update(
    ctx: StepContext[PPOSettings], rollout: Rollout, generator: torch.Generator
) -> dict[str, float]:
    """Several epochs of clipped-surrogate minibatch updates on one rollout; returns the update's metrics."""
    policy, settings, dist_info = ctx.policy, ctx.settings, ctx.dist_info
    optimizer, params = ctx.optimizer, ctx.params
    advantages, returns = compute_gae(
        rollout.rewards,
        rollout.values,
        rollout.terminated,
        rollout.truncated,
        rollout.final_values,
        rollout.last_value,
        settings.gamma,
        settings.gae_lambda,
    )
    batch = type(rollout.batches[0]).cat(rollout.batches)
    n = rollout.num_steps
    tokens = rollout.token_ids.reshape(n, -1)
    old_logp = rollout.log_probs.reshape(n)
    old_values = rollout.values.reshape(n)
    adv_all = advantages.reshape(n)
    ret_all = returns.reshape(n)
    stats: dict[str, list[float]] = {
        k: [] for k in ("pg_loss", "v_loss", "entropy", "approx_kl", "clipfrac", "kl_to_pi0", "grad_norm")
    }
    # A rollout without a single reward (sparse binary success, none reached) carries no policy-gradient
    # signal: its advantages are only the critic's errors, and normalising them to unit scale would push
    # the policy around at random (drifting from pi0 for nothing). Such updates train the critic only,
    # like GRPO/RLOO skip groups whose rewards do not vary.
    # The decision is global under DDP (ranks must update the same parameters) and, when skipping, only the
    # value head steps: the shared backbone gets no gradient at all (Adam would otherwise still move it).
    pg_active = not settings.skip_unrewarded or bool(
        max_over_ranks(int(float(rollout.rewards.abs().sum()) > 0.0), dist_info)
    )
    head = {id(p) for p in policy.value_head.parameters()}
    logprob_gap = float("nan")
    if settings.recompute_logprobs:
        cached = old_logp
        chunk = settings.micro_batch_size or settings.minibatch_size
        old_logp = behaviour_log_probs(policy, batch, tokens, chunk, settings.temperature)
        logprob_gap = float((old_logp - cached).abs().max())
    policy.train()
    stop = False
    for _epoch in range(settings.update_epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, settings.minibatch_size):
            idx = order[start : start + settings.minibatch_size]
            mb_adv = adv_all[idx]
            if settings.norm_adv and len(idx) > 1:
                # Over the whole minibatch, before any split into micro-batches.
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
            optimizer.zero_grad(set_to_none=True)
            mb_stats = accumulate_minibatch(
                policy,
                settings,
                MinibatchData(batch[idx], tokens[idx], old_logp[idx], mb_adv, old_values[idx], ret_all[idx]),
                pg_active,
            )
            loss = mb_stats.pop("loss")
            # Decided over all ranks: a rank that raised alone would leave the others waiting forever
            # in the next all-reduce.
            if any_rank(not np.isfinite(loss), dist_info):
                raise NonFiniteLossError(
                    f"non-finite PPO loss ({loss} on rank {dist_info.rank}) in epoch {_epoch}, "
                    f"minibatch starting at {start}"
                )
            all_reduce_gradients(params, dist_info)
            if not pg_active:
                for p in params:
                    if id(p) not in head:
                        p.grad = None
            grad_norm = grad_norm_and_clip(params, settings.max_grad_norm)
            if not np.isfinite(grad_norm):  # gradients are all-reduced: every rank sees the same norm
                raise NonFiniteLossError(f"non-finite PPO gradient norm in epoch {_epoch}, minibatch {start}")
            stats["grad_norm"].append(grad_norm)
            optimizer.step()
            for key, value in mb_stats.items():
                stats[key].append(value)
            # The early stop is decided on the mean approx_kl over ranks, so all ranks stop together.
            if settings.target_kl is not None and mean_over_ranks(mb_stats["approx_kl"], dist_info) > (
                settings.target_kl
            ):
                stop = True
                break
        if stop:
            break
    y_pred, y_true = old_values.numpy(), ret_all.numpy()
    var_y = float(np.var(y_true))
    metrics = {k: float(np.mean(v)) for k, v in stats.items() if v}
    metrics["explained_variance"] = (
        float("nan") if var_y == 0 else 1.0 - float(np.var(y_true - y_pred)) / var_y
    )
    metrics["early_stop"] = float(stop)
    metrics["logprob_recompute_gap"] = logprob_gap
    metrics["pg_skipped"] = float(not pg_active)
    return metrics


def train_ppo(
    policy: Any, venv: Any, settings: PPOSettings, run_dir: str | Path, config: Any, **options: Any
) -> dict[str, float]:
    """Run PPO for ``settings.num_iterations`` iterations; ``options`` are the rest of
    :class:`~vla_razor.trainers.base.TrainingRun` (resume_state, dist_info, evaluator, logger, progress,
    forecaster). Returns the last logged metrics."""
    trainer = OnPolicy("ppo", venv, settings, ppo_update, reward=settings.reward)
    return run_training(trainer, policy, TrainingRun(Path(run_dir), config, **options))
