"""Seeding, success/termination/truncation, placement ranges, image orientation, replay."""

from __future__ import annotations

import json
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from tests.envs.conftest import run_expert
from vla_razor import envs

_CHILD = """
import json
from vla_razor import envs
env = envs.make_env("pick_place_milk", use_camera=False)
obs, _ = env.reset(seed=123)
print(json.dumps(obs["object_state"].tolist() + obs["proprio"].tolist()))
"""


def test_same_seed_same_initial_state_across_processes():
    env = envs.make_env("pick_place_milk", use_camera=False)
    env.reset(seed=5)  # a different history in this process must not matter
    env.step(env.action_space.sample())
    obs, _ = env.reset(seed=123)
    here = obs["object_state"].tolist() + obs["proprio"].tolist()
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    there = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(here, there, rtol=0, atol=1e-6)
    other, _ = env.reset(seed=124)
    assert not np.allclose(other["object_state"][:3], obs["object_state"][:3])
    env.close()


@pytest.mark.parametrize("task", ["grasp_lift_can", "door", "nut_assembly_round"])
def test_expert_terminates_with_success(task):
    env = envs.make_env(task, use_camera=False)
    _, _, info = run_expert(env, task, seed=0)
    assert info["is_success"] is True
    env.close()


def test_zero_actions_truncate_at_horizon():
    env = envs.make_env("lift", use_camera=False, horizon=4)
    env.reset(seed=0)
    flags = []
    for _ in range(4):
        _, reward, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
        flags.append((terminated, truncated, info["is_success"], reward))
    assert flags[:3] == [(False, False, False, 0.0)] * 3
    assert flags[3] == (False, True, False, 0.0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))
    env.close()


def test_placement_ranges_are_respected():
    env = envs.make_env(
        "grasp_lift_bread", use_camera=False, placement={"x_range": (0.0, 0.0), "y_range": (0.05, 0.05)}
    )
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        # source bin centre is (0.1, -0.25); objects settle within a few mm of the sampled point
        np.testing.assert_allclose(obs["object_state"][:2], [0.1, -0.2], atol=0.01)
    env.close()


def test_agentview_is_upright(can_env):
    obs, _ = can_env.reset(seed=0)
    img = obs["agentview_image"].astype(np.float64)
    # In agentview the robot and table fill the lower part and the dark background the top; an upside
    # down image (OpenGL row order) inverts this brightness profile.
    top, bottom = img[: img.shape[0] // 4].mean(), img[-img.shape[0] // 4 :].mean()
    flipped = img[::-1]
    assert top != bottom
    assert (top < bottom) != (flipped[: img.shape[0] // 4].mean() < flipped[-img.shape[0] // 4 :].mean())
    assert bottom > top


def test_reset_to_replays_exactly():
    env = envs.make_env("pick_place_can", image_size=16)
    observations, states, _ = run_expert(env, "pick_place_can", seed=2, max_steps=25)
    replay = envs.make_env("pick_place_can", image_size=16)
    for idx in (0, 10, 24):
        obs = replay.unwrapped.reset_to(states[idx])
        np.testing.assert_allclose(obs["object_state"], observations[idx]["object_state"], atol=1e-6)
        np.testing.assert_allclose(obs["proprio"], observations[idx]["proprio"], atol=1e-6)
        np.testing.assert_array_equal(obs["agentview_image"], observations[idx]["agentview_image"])
    # Stepping from a restored state follows the same trajectory. MuJoCo's state omits the gripper's
    # ramped command, which reset_to re-estimates from the fingers: close, not bit-exact, mid-grasp.
    expert_actions = [np.full(7, 0.3, dtype=np.float32)] * 3
    env.unwrapped.reset_to(states[5])
    replay.unwrapped.reset_to(states[5])
    for a in expert_actions:
        o1, *_ = env.step(a)
        o2, *_ = replay.step(a)
    np.testing.assert_allclose(o1["object_state"], o2["object_state"], atol=2e-3)
    np.testing.assert_allclose(o1["proprio"][:7], o2["proprio"][:7], atol=2e-3)
    env.close()
    replay.close()


def test_render_frame_only_when_configured(can_env):
    assert can_env.unwrapped.render_frame() is None
    env = envs.make_env("lift", use_camera=False, render_camera="frontview", render_size=48)
    env.reset(seed=0)
    frame = env.unwrapped.render_frame()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_mujoco_error_ends_episode_as_a_failure(monkeypatch):
    env = envs.make_env("lift", use_camera=False, horizon=10)
    env.reset(seed=0)
    rs = env.unwrapped.robosuite_env

    def explode(action):
        raise mujoco.FatalError("mj_stepSkip: simulation unstable")

    monkeypatch.setattr(rs, "step", explode)
    _, reward, terminated, truncated, info = env.step(np.zeros(7))
    # A failure, not a time-out: terminated, so no learner bootstraps from the lost state.
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, True, False, False)
    assert "unstable" in info["sim_error"]
    env.close()


def test_mujoco_instability_warning_ends_episode_as_a_failure(monkeypatch):
    env = envs.make_env("lift", use_camera=False, horizon=10)
    env.reset(seed=0)
    rs = env.unwrapped.robosuite_env
    step = rs.step

    def unstable_step(action):
        out = step(action)
        rs.sim.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number += 1  # what mj_step does on a blow-up
        return out

    monkeypatch.setattr(rs, "step", unstable_step)
    _, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert "instability" in info["sim_error"]
    env.close()


def test_non_mujoco_exception_propagates_from_step(monkeypatch):
    env = envs.make_env("lift", use_camera=False, horizon=10)
    env.reset(seed=0)
    robot = env.unwrapped.robosuite_env.robots[0]

    def broken_controller(*args, **kwargs):
        raise RuntimeError("a bug in the controller")

    monkeypatch.setattr(robot, "control", broken_controller)
    with pytest.raises(RuntimeError, match="a bug in the controller"):
        env.step(np.zeros(7))
    env.close()
