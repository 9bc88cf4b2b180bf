"""PPO learns on a fast fake task (real policy, real loop) and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainers.conftest import tiny_policy_cfg
from tests.trainers.fake_env import FakeReachVectorEnv, success_probability
from vla_razor.policies import build_policy, load_policy
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.on_policy import update_seeds
from vla_razor.trainers.ppo import PPOSettings, train_ppo

SETTINGS = dict(
    lr=1e-2,
    num_iterations=15,
    num_steps=8,
    update_epochs=4,
    minibatch_size=16,
    save_every=5,
    keep_last=None,
    target_kl=None,
    ent_coef=0.0,
)


def _policy(**kw):
    return build_policy(tiny_policy_cfg(**kw))


def test_ppo_raises_success_on_easy_task(tmp_path) -> None:
    policy = _policy(finetune="full")
    before = success_probability(policy)
    env = FakeReachVectorEnv(num_envs=4, horizon=1, threshold=0.5)
    # gamma = 0 makes the one-step task a clean bandit: a failure's return is 0, not gamma * V(next
    # state) through the time-limit bootstrap, whose critic noise made the learning curve (and with it
    # a fixed threshold) depend on the CPU's floating point. `python benchmarks/learning_margins.py`
    # shows the room over seeds.
    train_ppo(policy, env, PPOSettings(**{**SETTINGS, "gamma": 0.0}), tmp_path, {}, progress=False)
    after = success_probability(policy)
    # Identity normalisation: P(first action dim decodes above 0.5) starts near 1/4.
    assert before < 0.35, before
    assert after > 0.7, (before, after)
    success = [m["train/episode_success"] for m in read_metrics(tmp_path)]
    assert np.mean(success[-3:]) > np.mean(success[:3]) + 0.2, success
    assert all(np.isfinite(m["train/approx_kl"]) for m in read_metrics(tmp_path))


def test_ppo_resume_matches_uninterrupted_run(tmp_path) -> None:
    settings = PPOSettings(**{**SETTINGS, "num_iterations": 6, "save_every": 3})
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_ppo(_policy(), FakeReachVectorEnv(), settings, full, {}, progress=False)

    class StopAt4:
        def __call__(self, policy, step):
            if step == 4:
                raise KeyboardInterrupt
            return {}

    with pytest.raises(KeyboardInterrupt):
        train_ppo(
            _policy(),
            FakeReachVectorEnv(),
            PPOSettings(**{**SETTINGS, "num_iterations": 6, "save_every": 3, "eval_every": 1}),
            cut,
            {},
            evaluator=StopAt4(),
            progress=False,
        )
    ckpt = load_checkpoint(cut)
    assert ckpt.trainer_state["update"] == 3
    resumed = load_policy(ckpt.policy_dir)
    train_ppo(
        resumed, FakeReachVectorEnv(), settings, cut, {}, resume_state=ckpt.trainer_state, progress=False
    )
    a = {m["step"]: m for m in read_metrics(full)}
    b = {m["step"]: m for m in read_metrics(cut)}
    for step in (4, 5, 6):
        for key in ("train/pg_loss", "train/v_loss", "train/episode_success", "train/approx_kl"):
            assert a[step][key] == b[step][key], (step, key)


def test_update_seeds_are_disjoint_and_below_heldout_range() -> None:
    seen = set()
    for update in range(50):
        for rank in range(2):
            seeds = update_seeds(3, update, rank, 4, 2)
            assert not seen.intersection(seeds)
            seen.update(seeds)
    assert max(seen) < 100_000


def test_bad_ppo_settings() -> None:
    with pytest.raises(ValueError, match="trainer.lr"):
        PPOSettings(lr=0)
    with pytest.raises(ValueError, match="trainer.reward"):
        PPOSettings(reward="dense")


def test_rollouts_without_reward_train_only_the_critic(tmp_path) -> None:
    import torch

    policy = _policy()
    backbone_before = {n: p.detach().clone() for n, p in policy.backbone.named_parameters()}
    head_before = {n: p.detach().clone() for n, p in policy.value_head.named_parameters()}
    never = FakeReachVectorEnv(num_envs=2, horizon=2, threshold=2.0)  # unreachable: reward is always 0
    settings = PPOSettings(**{**SETTINGS, "num_iterations": 2, "save_every": 0})
    train_ppo(policy, never, settings, tmp_path, {}, progress=False)
    assert all(torch.equal(p, backbone_before[n]) for n, p in policy.backbone.named_parameters())
    assert any(not torch.equal(p, head_before[n]) for n, p in policy.value_head.named_parameters())
    assert all(m["train/pg_skipped"] == 1.0 for m in read_metrics(tmp_path))


def test_no_success_at_all_is_reported_with_remedies(tmp_path, caplog) -> None:
    never = FakeReachVectorEnv(num_envs=4, horizon=2, threshold=2.0)  # unreachable: never a success
    settings = PPOSettings(**{**SETTINGS, "num_iterations": 3, "save_every": 0})
    with caplog.at_level("WARNING", logger="vla_razor.trainers.on_policy"):
        train_ppo(_policy(), never, settings, tmp_path, {}, progress=False)
    warnings = [r.getMessage() for r in caplog.records if "0 successes" in r.getMessage()]
    assert warnings and "16 episodes" in warnings[0] and "trainer.reward=shaped" in warnings[0]
    assert read_metrics(tmp_path)[-1]["train/success_rate_so_far"] == 0.0
