"""Rejection-sampling fine-tuning: keeps exactly the successful episodes' steps, and learns."""

from __future__ import annotations

import numpy as np
import torch

from tests.trainers.conftest import tiny_policy_cfg
from tests.trainers.fake_env import FakeReachVectorEnv, success_probability
from vla_razor.policies import build_policy
from vla_razor.rollouts import Rollout
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.rft import RFTSettings, successful_steps, train_rft

RFT_TEST_SETTINGS = dict(
    lr=1e-2, num_iterations=15, num_steps=8, update_epochs=4, minibatch_size=16, save_every=0
)


def _rollout(terminated, truncated, success) -> Rollout:
    t = torch.tensor(terminated, dtype=torch.bool).T
    z = torch.zeros(t.shape)
    return Rollout(
        batches=[],
        token_ids=torch.zeros(*t.shape, 7, dtype=torch.long),
        log_probs=z,
        values=z,
        rewards=z,
        terminated=t,
        truncated=torch.tensor(truncated, dtype=torch.bool).T,
        final_values=z,
        last_value=torch.zeros(t.shape[1]),
        success=torch.tensor(success, dtype=torch.bool).T,
    )


def test_successful_steps_mask_by_hand() -> None:
    # env 0: success at t=1, then an episode truncated at t=3, then an unfinished one (t=4)
    # env 1: failure (truncated) at t=2, success at t=4
    ro = _rollout(
        terminated=[[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]],
        truncated=[[0, 0, 0, 1, 0], [0, 0, 1, 0, 0]],
        success=[[0, 1, 0, 0, 0], [0, 0, 0, 0, 1]],
    )
    keep = successful_steps(ro).T.int().tolist()
    assert keep == [[1, 1, 0, 0, 0], [0, 0, 0, 1, 1]]


def test_rft_raises_success_on_easy_task(tmp_path) -> None:
    policy = build_policy(tiny_policy_cfg(finetune="full"))
    before = success_probability(policy)
    settings = RFTSettings(**RFT_TEST_SETTINGS)
    train_rft(
        policy,
        FakeReachVectorEnv(num_envs=4, horizon=1, threshold=0.5),
        settings,
        tmp_path,
        {},
        progress=False,
    )
    # Exact success probability, not sampled success: no sampling noise, so the margin holds on every
    # CPU (`python benchmarks/learning_margins.py` shows the room over seeds).
    after = success_probability(policy)
    assert before < 0.35, before
    assert after > 0.7, (before, after)
    success = [m["train/episode_success"] for m in read_metrics(tmp_path)]
    assert np.mean(success[-3:]) > np.mean(success[:3]) + 0.2, success
