"""DAgger (Ross, Gordon and Bagnell, 2011): on-policy states, expert labels, the BC loss.

Each iteration:
1. roll out the mixture policy: at every step and in every env, with probability beta_i the env executes
   the relabelling expert's action, otherwise the learner's sampled action;
2. label every visited state with the relabelling expert's action (:mod:`vla_razor.envs.relabel`: the
   scripted expert with its phase read from privileged simulator state, so it can take over anywhere);
3. add the labelled states to the aggregate of every iteration so far;
4. take ``updates_per_iteration`` BC steps (BC's loss, random-shift augmentation and learning rate) on
   minibatches drawn uniformly from the aggregate.

**Beta schedule**: beta_i = ``beta`` * ``beta_decay`` ** (i - 1) for iteration i = 1, 2, ... The default,
beta = 0, makes every state the learner's own (pi0's in the first iteration) and leaves the expert only
the labels: the contrast the study needs (BC: demo states; DAgger: on-policy states; the same expert
labels, loss and learning rate). Ross et al.'s beta_1 = 1 would make the first iteration expert-driven,
which is BC's demo states again.

**Resume**: each iteration's labelled states go to ``run_dir/dagger/rank<r>_iter<i>.npz`` (written
atomically, before the update). A resumed run reads those of the iterations its checkpoint covers, so it
continues on exactly the aggregate an uninterrupted run had; files of later iterations (written before a
kill, after the last checkpoint) are rewritten when those iterations run again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.data.steps import StepData
from vla_razor.errors import BadInputError
from vla_razor.io_utils import atomic_path
from vla_razor.rollouts import Rollout
from vla_razor.trainers.base import Metrics, StepContext, TrainingRun
from vla_razor.trainers.bc import bc_batch_loss
from vla_razor.trainers.common import NonFiniteLossError, check_positive, grad_norm_and_clip
from vla_razor.trainers.distributed import all_reduce_gradients, any_rank
from vla_razor.trainers.loop import run_training
from vla_razor.trainers.on_policy import OnPolicy, OnPolicySettings

log = logging.getLogger(__name__)

EXPERT_ACTION_KEY = "expert_action"  # the env's label (envs option expert_labels=true)
INSTRUCTION_KEY = "instruction"
AGGREGATE_DIR = "dagger"


@dataclass(kw_only=True)
class DaggerSettings(OnPolicySettings):
    """DAgger: the one source of its defaults (configs/trainer/dagger.yaml only overrides). The BC step's
    settings mean what they mean for BC (vla_razor/trainers/bc.py)."""

    name: str = "dagger"
    lr: float = 1e-4
    weight_decay: float = 0.01
    minibatch_size: int = 64
    num_iterations: int = 20
    save_every: int = 5
    num_steps: int = 100

    updates_per_iteration: int = 50
    """BC steps on the aggregate after each iteration's rollout"""
    shift_pad: int = 4
    """random-shift image augmentation in pixels, as BC's (0: off)"""
    beta: float = 0.0
    """the expert's share of executed actions in iteration 1 (0: the learner acts, the expert only labels)"""
    beta_decay: float = 1.0
    """beta_i = beta * beta_decay ** (i - 1)"""

    _positive = (*OnPolicySettings._positive, "updates_per_iteration")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.beta <= 1.0:
            raise BadInputError(
                f"trainer.beta={self.beta!r} must be in [0, 1] (the expert's share of actions)"
            )
        if not 0.0 <= self.beta_decay <= 1.0:
            raise BadInputError(f"trainer.beta_decay={self.beta_decay!r} must be in [0, 1]")
        check_positive("trainer.shift_pad", self.shift_pad, allow_zero=True)

    def beta_at(self, iteration: int) -> float:
        """The mixture's expert share in iteration ``iteration`` (1-based)."""
        return self.beta * self.beta_decay ** (iteration - 1)


def labelled_steps(rollout: Rollout, keys: list[str]) -> StepData:
    """The rollout's visited states (the policy's input ``keys``) with the expert's labels, as BC data."""
    obs = rollout.observations
    missing = [k for k in (*keys, EXPERT_ACTION_KEY, INSTRUCTION_KEY) if k not in obs]
    if missing:
        raise BadInputError(
            f"DAgger's rollout lacks {missing}: its envs must be built with expert_labels=true and the "
            f"collector asked to record {keys + [EXPERT_ACTION_KEY, INSTRUCTION_KEY]}"
        )
    flat = {k: obs[k].reshape(-1, *obs[k].shape[2:]) for k in keys}
    words = obs[INSTRUCTION_KEY].reshape(-1).astype(str)
    instructions, ids = np.unique(words, return_inverse=True)
    n = len(words)
    return StepData(
        obs=flat,
        instruction_ids=ids.astype(np.int64),
        instructions=[str(s) for s in instructions],
        actions=obs[EXPERT_ACTION_KEY].reshape(n, -1).astype(np.float32),
        episode_ids=np.zeros(n, dtype=np.int64),
    )


def _shard_path(run_dir: Path, rank: int, iteration: int) -> Path:
    return run_dir / AGGREGATE_DIR / f"rank{rank}_iter{iteration:06d}.npz"


def save_shard(path: Path, data: StepData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"obs/{k}": v for k, v in data.obs.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            instruction_ids=data.instruction_ids,
            instructions=np.asarray(data.instructions),
            actions=data.actions,
            **arrays,
        )


def load_shard(path: Path) -> StepData:
    if not path.is_file():
        raise BadInputError(
            f"DAgger's labelled states {str(path)!r} are missing: the run folder is incomplete; re-train "
            "the run from scratch (delete its folder) or resume from a complete copy"
        )
    with np.load(path) as f:
        n = len(f["actions"])
        return StepData(
            obs={k[len("obs/") :]: f[k] for k in f.files if k.startswith("obs/")},
            instruction_ids=f["instruction_ids"],
            instructions=[str(s) for s in f["instructions"]],
            actions=f["actions"],
            episode_ids=np.zeros(n, dtype=np.int64),
        )


class DaggerUpdate:
    """DAgger's update (an on-policy :data:`~vla_razor.trainers.on_policy.UpdateFn` with a memory): add
    the rollout's expert-labelled states to the aggregate, then BC steps on the aggregate."""

    def __init__(self, run_dir: Path, keys: list[str]) -> None:
        self.run_dir = Path(run_dir)
        self.keys = keys
        self.parts: list[StepData] = []

    def _catch_up(self, ctx: StepContext[DaggerSettings]) -> None:
        """After a resume at iteration k: the aggregate of iterations 1..k, read back from their files."""
        rank = ctx.dist_info.rank
        while len(self.parts) < ctx.step:
            self.parts.append(load_shard(_shard_path(self.run_dir, rank, len(self.parts) + 1)))

    def __call__(
        self, ctx: StepContext[DaggerSettings], rollout: Rollout, generator: torch.Generator
    ) -> Metrics:
        settings, dist_info = ctx.settings, ctx.dist_info
        self._catch_up(ctx)
        part = labelled_steps(rollout, self.keys)
        save_shard(_shard_path(self.run_dir, dist_info.rank, ctx.step + 1), part)
        self.parts.append(part)
        data = StepData.concat(self.parts)
        # One numpy stream per update, drawn from the trainer's checkpointed CPU stream.
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))
        ctx.policy.train()
        losses, accuracies = [], []
        for b in range(settings.updates_per_iteration):
            index = rng.integers(0, len(data), size=settings.minibatch_size)
            obs, instructions, actions = data.batch(index)
            loss, metrics = bc_batch_loss(
                ctx.policy, obs, instructions, actions, shift_pad=settings.shift_pad, rng=rng
            )
            if any_rank(not torch.isfinite(loss), dist_info):
                raise NonFiniteLossError(f"non-finite DAgger loss ({float(loss.detach())}) in BC step {b}")
            ctx.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            all_reduce_gradients(ctx.params, dist_info)
            if not np.isfinite(grad_norm_and_clip(ctx.params, settings.max_grad_norm)):
                raise NonFiniteLossError(f"non-finite DAgger gradient norm in BC step {b}")
            ctx.optimizer.step()
            losses.append(metrics["loss"])
            accuracies.append(metrics["token_accuracy"])
        executed = rollout.expert_executed
        return {
            "loss": float(np.mean(losses)),
            "token_accuracy": float(np.mean(accuracies)),
            "aggregate_steps": float(len(data)),
            "beta": settings.beta_at(ctx.step + 1),
            "expert_executed": float(executed.float().mean()) if executed is not None else 0.0,
        }


class Dagger(OnPolicy):
    """The on-policy trainer whose rollouts record the expert's labels and mix in its actions (beta)."""

    def __init__(self, venv: Any, settings: DaggerSettings, run_dir: Path, keys: list[str]) -> None:
        super().__init__("dagger", venv, settings, DaggerUpdate(run_dir, keys), reward="binary")
        self.record = (*keys, EXPERT_ACTION_KEY, INSTRUCTION_KEY)

    def collect_options(self, ctx: StepContext[Any]) -> dict[str, Any]:
        settings = self.settings
        assert isinstance(settings, DaggerSettings)
        return {"record": self.record, "expert_mix": settings.beta_at(ctx.step + 1)}


def train_dagger(
    policy: Any, venv: Any, settings: DaggerSettings, run_dir: str | Path, config: Any, **options: Any
) -> dict[str, float]:
    """Run ``settings.num_iterations`` DAgger iterations on ``venv`` (built with ``expert_labels=True``);
    ``options`` are the rest of :class:`~vla_razor.trainers.base.TrainingRun`. Returns the last metrics."""
    keys = policy.settings.input_keys
    trainer = Dagger(venv, settings, Path(run_dir), keys)
    return run_training(trainer, policy, TrainingRun(Path(run_dir), config, **options))
