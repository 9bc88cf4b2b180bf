"""The training loop's contract with a trainer, on a toy trainer (what a fourth method, DAgger, plugs into):
exact resume of its own random stream, its extra checkpoint state, and non-finite losses."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from tests.trainers.conftest import tiny_policy_cfg
from vla_razor.policies import build_policy, load_policy
from vla_razor.trainers.base import Metrics, StepContext, Trainer, TrainingRun
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.common import NonFiniteLossError, TrainerSettings
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.loop import run_training
from vla_razor.trainers.rng import RngStreams


@dataclass(kw_only=True)
class ToySettings(TrainerSettings):
    name: str = "toy"
    lr: float = 1e-2
    num_iterations: int = 6
    save_every: int = 2
    keep_last: int | None = None


class Toy(Trainer[ToySettings]):
    """Each update pulls the weights towards noise from its own stream; fails at ``nan_at`` if given."""

    name = "toy"
    unit = "step"

    def __init__(self, settings: ToySettings, nan_at: int | None = None) -> None:
        self.settings = settings
        self.nan_at = nan_at

    def begin(self, ctx: StepContext[ToySettings]) -> RngStreams:
        self.noise = torch.Generator().manual_seed(self.settings.seed)
        return RngStreams(generators={"noise": self.noise})

    def step(self, ctx: StepContext[ToySettings]) -> Metrics:
        if ctx.step == self.nan_at:
            raise NonFiniteLossError(f"toy loss is nan at step {ctx.step}")
        draw = torch.rand((), generator=self.noise)
        loss = sum(((p - draw) ** 2).mean() for p in ctx.params)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ctx.optimizer.step()
        return {"draw": float(draw), "loss": float(loss.detach())}

    def report(self, ctx: StepContext[ToySettings], metrics: Metrics, kl: Metrics | None) -> Metrics:
        ctx.logger.log(ctx.step, metrics, prefix="train/", summary=False)
        return metrics

    def checkpoint_state(self, ctx: StepContext[ToySettings]) -> dict[str, int]:
        return {"toy_marker": 10 * ctx.step}


def _stop_at(step: int):
    def evaluator(policy, done: int) -> Metrics:
        if done == step:
            raise KeyboardInterrupt
        return {"evaluated_at": float(done)}

    return evaluator


def test_a_new_trainer_resumes_exactly_through_the_loop(tmp_path) -> None:
    settings = ToySettings(eval_every=1)
    full, cut = tmp_path / "full", tmp_path / "cut"
    uninterrupted = build_policy(tiny_policy_cfg())
    result = run_training(
        Toy(settings), uninterrupted, TrainingRun(full, {}, evaluator=_stop_at(-1), progress=False)
    )
    assert result["evaluated_at"] == 6.0  # the run's result holds the last evaluation
    with pytest.raises(KeyboardInterrupt):
        run_training(
            Toy(settings),
            build_policy(tiny_policy_cfg()),
            TrainingRun(cut, {}, evaluator=_stop_at(3), progress=False),
        )
    ckpt = load_checkpoint(cut)
    state = ckpt.trainer_state
    assert (state["trainer"], state["step"], state["toy_marker"], state["nonfinite"]) == ("toy", 2, 20, None)
    resumed = load_policy(ckpt.policy_dir)
    run_training(Toy(settings), resumed, TrainingRun(cut, {}, resume_state=state, progress=False))
    a = {m["step"]: m for m in read_metrics(full)}
    b = {m["step"]: m for m in read_metrics(cut)}
    assert [b[s] for s in (3, 4, 5, 6)] == [a[s] for s in (3, 4, 5, 6)]
    # The trained weights (a reloaded full fine-tune's frozen reference is not pi0: see load_training_policy).
    pairs = zip(uninterrupted.trainable_parameters(), resumed.trainable_parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


def test_a_nonfinite_step_saves_the_weights_and_says_where(tmp_path) -> None:
    with pytest.raises(NonFiniteLossError, match=r"at step 3; last good weights saved in .*step_000003"):
        run_training(
            Toy(ToySettings(save_every=0), nan_at=3),
            build_policy(tiny_policy_cfg()),
            TrainingRun(tmp_path, {}, progress=False),
        )
    state = load_checkpoint(tmp_path).trainer_state
    assert state["step"] == 3 and "toy loss is nan" in state["nonfinite"]
