"""DAgger: expert labels on the policy's own states, aggregated over iterations, BC steps on them; the
beta mixture executes the expert's actions; a resumed run continues on exactly the same aggregate."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainers.conftest import tiny_policy_cfg
from tests.trainers.fake_env import FakeReachVectorEnv, success_probability
from vla_razor.errors import BadInputError
from vla_razor.policies import build_policy, load_policy
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.dagger import DaggerSettings, load_shard, train_dagger
from vla_razor.trainers.logger import read_metrics

SETTINGS = dict(
    lr=1e-2,
    num_iterations=6,
    num_steps=4,
    updates_per_iteration=6,
    minibatch_size=16,
    save_every=0,
    shift_pad=0,
)
EXPERT = 0.9  # the labelling expert's first action dimension: above the fake task's success threshold


class LabelledReach(FakeReachVectorEnv):
    """The fake reach task with an expert label in every observation (as envs built with
    expert_labels=true give): the action that succeeds."""

    def _obs(self, n: int | None = None) -> dict:
        obs = super()._obs(n)
        label = np.zeros((len(obs["agentview_image"]), 7), dtype=np.float32)
        label[:, 0] = EXPERT
        obs["expert_action"] = label
        return obs


def _policy():
    return build_policy(tiny_policy_cfg(finetune="full"))


def test_dagger_learns_the_expert_labels_from_its_own_states(tmp_path) -> None:
    policy = _policy()
    before = success_probability(policy)
    train_dagger(
        policy, LabelledReach(num_envs=4, horizon=2), DaggerSettings(**SETTINGS), tmp_path, {}, progress=False
    )
    after = success_probability(policy)
    assert before < 0.35 and after > 0.7, (before, after)
    metrics = read_metrics(tmp_path)
    # The aggregate grows by every visited state (4 envs x 4 steps) each iteration; beta = 0: no expert action.
    assert [m["train/aggregate_steps"] for m in metrics] == [16.0 * i for i in range(1, 7)]
    assert all(m["train/expert_executed"] == 0.0 for m in metrics)
    shard = load_shard(tmp_path / "dagger" / "rank0_iter000003.npz")
    assert len(shard) == 16 and np.all(shard.actions[:, 0] == EXPERT)
    assert shard.instructions == ["lift the red cube"] and set(shard.obs) == {"agentview_image"}


def test_beta_mixture_executes_the_expert_actions(tmp_path) -> None:
    settings = DaggerSettings(**{**SETTINGS, "num_iterations": 3, "beta": 1.0, "beta_decay": 0.5})
    assert [settings.beta_at(i) for i in (1, 2, 3)] == [1.0, 0.5, 0.25]
    train_dagger(_policy(), LabelledReach(num_envs=8, horizon=1), settings, tmp_path, {}, progress=False)
    metrics = read_metrics(tmp_path)
    # Iteration 1: only expert actions, which all succeed (horizon 1: every step ends an episode).
    assert metrics[0]["train/expert_executed"] == 1.0 and metrics[0]["train/episode_success"] == 1.0
    assert [m["train/beta"] for m in metrics] == [1.0, 0.5, 0.25]
    assert 0.0 < metrics[1]["train/expert_executed"] < 1.0


def test_dagger_resume_matches_uninterrupted_run(tmp_path) -> None:
    settings = DaggerSettings(**{**SETTINGS, "save_every": 3})
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_dagger(_policy(), LabelledReach(), settings, full, {}, progress=False)

    class StopAt4:  # killed after iteration 4 wrote its labelled states, before any checkpoint holds them
        def __call__(self, policy, step):
            if step == 4:
                raise KeyboardInterrupt
            return {}

    with pytest.raises(KeyboardInterrupt):
        train_dagger(
            _policy(),
            LabelledReach(),
            DaggerSettings(**{**SETTINGS, "save_every": 3, "eval_every": 1}),
            cut,
            {},
            evaluator=StopAt4(),
            progress=False,
        )
    ckpt = load_checkpoint(cut)
    assert ckpt.trainer_state["update"] == 3
    resumed = load_policy(ckpt.policy_dir)
    train_dagger(resumed, LabelledReach(), settings, cut, {}, resume_state=ckpt.trainer_state, progress=False)
    a = {m["step"]: m for m in read_metrics(full)}
    b = {m["step"]: m for m in read_metrics(cut)}
    for step in (4, 5, 6):
        for key in ("train/loss", "train/token_accuracy", "train/aggregate_steps", "train/episode_success"):
            assert a[step][key] == b[step][key], (step, key)


def test_bad_settings_and_unlabelled_envs_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(BadInputError, match="trainer.beta=1.5"):
        DaggerSettings(beta=1.5)
    with pytest.raises(BadInputError, match=r"lack \[.expert_action.\] .*expert_labels=true"):
        train_dagger(
            _policy(), FakeReachVectorEnv(), DaggerSettings(**SETTINGS), tmp_path, {}, progress=False
        )
