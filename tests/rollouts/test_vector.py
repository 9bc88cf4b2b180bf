"""Training rollouts through the env pool: the pool's vector env steps exactly like gymnasium's
AsyncVectorEnv (same-step autoreset), double-buffered collection assembles the same rollout as the
sequential one, PPO resumes bit-identically on it, and a dying worker only truncates its episodes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from tests.rollouts.fake_envs import make_fake_env
from tests.trainers.conftest import tiny_policy_cfg
from vla_razor import envs
from vla_razor.policies import build_policy, load_policy
from vla_razor.policies.batch import PolicyBatch
from vla_razor.rollouts import EngineSettings, EnvPool, RolloutCollector
from vla_razor.rollouts.vector import PoolVectorEnv
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.ppo import PPOSettings, train_ppo


def test_pool_vector_env_steps_like_gymnasiums_async_vector_env() -> None:
    """Same seeds, same actions: identical observations (images included), rewards, done flags and final
    observations, across autoresets (a 4-step horizon)."""
    kwargs = {"cameras": ("agentview",), "image_size": 32, "horizon": 4}
    gym_env = envs.make_vector_env(
        "lift", 2, vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs
    )
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (9, 2, 7)).astype(np.float32)
    with EnvPool(EngineSettings(num_workers=2, groups=1)) as pool:
        mine = PoolVectorEnv(pool, {"task": "lift", **kwargs}, 2)
        try:
            a, _ = gym_env.reset(seed=[5, 6])
            b, _ = mine.reset(seed=[5, 6])
            assert all(np.array_equal(a[k], b[k]) for k in a if k != "instruction")
            ended = 0
            for step in actions:
                ra, rb = gym_env.step(step), mine.step(step)
                for x, y in zip(ra[1:4], rb[1:4], strict=True):
                    assert np.array_equal(x, y)
                assert all(np.array_equal(ra[0][k], rb[0][k]) for k in ra[0] if k != "instruction")
                done = np.flatnonzero(ra[2] | ra[3])
                ended += len(done)
                for i in done:
                    fa, fb = ra[4]["final_obs"][i], rb[4]["final_obs"][i]
                    assert np.array_equal(fa["agentview_image"], fb["agentview_image"])
                    assert rb[4]["final_info"][i]["is_success"] == ra[4]["final_info"]["is_success"][i]
            assert ended >= 4  # two autoresets per env at least
        finally:
            gym_env.close()


class TokenPolicy:
    """Deterministic in each row's observation alone: tokens, log-prob and value from the image."""

    device = torch.device("cpu")
    training = False

    def prepare(self, obs: dict, instructions: list[str]) -> PolicyBatch:
        level = torch.as_tensor(np.asarray(obs["agentview_image"])[:, 0, 0, 0].astype(np.int64))
        return PolicyBatch(level[:, None], torch.ones(len(level), 1, dtype=torch.long), level[:, None])

    def act(self, batch: PolicyBatch, temperature: float = 1.0, generator=None, greedy: bool = False):
        level = batch.input_ids[:, 0]
        actions = np.zeros((len(level), 7), dtype=np.float32)
        actions[:, 0] = np.where(level.numpy() % 4 == 0, 1.0, -1.0)
        return SimpleNamespace(
            actions=actions,
            token_ids=level[:, None].repeat(1, 7),
            log_prob=level.float() / 100,
            value=level.float() / 10,
        )

    def value(self, batch: PolicyBatch) -> torch.Tensor:
        return batch.input_ids[:, 0].float() / 10


@pytest.fixture(scope="module")
def fake_pool():
    with EnvPool(EngineSettings(num_workers=2, slots_per_worker=2), env_factory=make_fake_env) as pool:
        yield pool


def _rollout(venv, seeds, steps=9):
    collector = RolloutCollector(venv)
    collector.reset(seeds)
    return collector.collect(TokenPolicy(), steps)


def test_double_buffered_rollout_equals_the_sequential_one(fake_pool) -> None:
    seeds = [3, 4, 5, 9]
    piped = PoolVectorEnv(fake_pool, {"task": "lift"}, 4, name="piped")
    assert piped.groups == [[0, 1], [2, 3]]
    plain = PoolVectorEnv(fake_pool, {"task": "lift"}, 4, name="plain")
    plain.groups = [list(range(4))]  # one group: the sequential loop
    a, b = _rollout(piped, seeds), _rollout(plain, seeds)
    for name in ("token_ids", "log_probs", "values", "rewards", "terminated", "truncated", "final_values"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.last_value, b.last_value) and torch.equal(a.success, b.success)
    assert a.episodes == b.episodes and len(a.episodes) > 4
    assert bool(a.truncated.any()) and bool(a.terminated.any())  # both kinds of episode end are covered
    assert torch.equal(PolicyBatch.cat(a.batches).input_ids, PolicyBatch.cat(b.batches).input_ids)


def test_three_groups_assemble_the_sequential_rollout() -> None:
    settings = EngineSettings(num_workers=2, slots_per_worker=2, groups=3)
    with EnvPool(settings, env_factory=make_fake_env) as pool:
        piped = PoolVectorEnv(pool, {"task": "lift"}, 6, name="three")
        assert piped.groups == [[0, 1], [2, 3], [4, 5]]
        plain = PoolVectorEnv(pool, {"task": "lift"}, 6, name="plain")
        plain.groups = [list(range(6))]
        seeds = [3, 4, 5, 9, 10, 11]
        a, b = _rollout(piped, seeds), _rollout(plain, seeds)
    for name in ("token_ids", "log_probs", "values", "rewards", "terminated", "truncated", "final_values"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert torch.equal(a.last_value, b.last_value) and torch.equal(a.success, b.success)
    assert a.episodes == b.episodes and bool(a.truncated.any()) and bool(a.terminated.any())
    assert torch.equal(PolicyBatch.cat(a.batches).input_ids, PolicyBatch.cat(b.batches).input_ids)


def test_dying_worker_truncates_its_episodes_and_training_goes_on(fake_pool) -> None:
    venv = PoolVectorEnv(fake_pool, {"task": "lift", "die_at_seed": 7}, 4, name="dying")
    rollout = _rollout(venv, [7, 8, 9, 10], steps=6)
    errors = [e for e in rollout.episodes if e.sim_error]
    assert errors and all("env worker died" in e.sim_error and not e.success for e in errors)
    assert not rollout.terminated[0].any() and rollout.truncated[0, 0]  # env 0 (seed 7) cut at step 1
    assert rollout.rewards[0, 0] == 0
    again = _rollout(venv, [1, 2, 3, 4])  # the replacement serves the next update as usual
    assert not any(e.sim_error for e in again.episodes)


def test_ppo_resumes_bit_identically_on_the_double_buffered_pool(tmp_path, fake_pool) -> None:
    settings = dict(lr=1e-2, num_steps=4, update_epochs=2, minibatch_size=8, keep_last=None, target_kl=None)
    full, cut = tmp_path / "full", tmp_path / "cut"

    def venv(name: str) -> PoolVectorEnv:
        return PoolVectorEnv(fake_pool, {"task": "lift"}, 4, name=name)

    train_ppo(
        build_policy(tiny_policy_cfg()),
        venv("a"),
        PPOSettings(**settings, num_iterations=4, save_every=2),
        full,
        {},
        progress=False,
    )

    def stop_at_3(policy, step):
        if step == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train_ppo(
            build_policy(tiny_policy_cfg()),
            venv("b"),
            PPOSettings(**settings, num_iterations=4, save_every=2, eval_every=1),
            cut,
            {},
            evaluator=stop_at_3,
            progress=False,
        )
    ckpt = load_checkpoint(cut)
    assert ckpt.trainer_state["update"] == 2
    train_ppo(
        load_policy(ckpt.policy_dir),
        venv("c"),
        PPOSettings(**settings, num_iterations=4, save_every=2),
        cut,
        {},
        resume_state=ckpt.trainer_state,
        progress=False,
    )
    a = {m["step"]: m for m in read_metrics(full)}
    b = {m["step"]: m for m in read_metrics(cut)}
    for step in (3, 4):
        for key in (
            "train/pg_loss",
            "train/v_loss",
            "train/episode_success",
            "train/approx_kl",
            "train/reward_mean",
        ):
            assert a[step][key] == b[step][key], (step, key)
