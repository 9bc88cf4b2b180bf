"""Shared fixtures for the env tests: small images, short horizons, one env per module where possible."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from vla_razor import envs

SMALL = 32


@pytest.fixture(scope="module")
def can_env():
    """pick_place_can with a small agentview camera, shared by a test module."""
    env = envs.make_env("pick_place_can", image_size=SMALL)
    yield env
    env.close()


def run_expert(env, task: str, seed: int, max_steps: int | None = None):
    """Roll the scripted expert; returns (list of obs, list of states before each step, last info)."""
    expert = envs.make_expert(task)
    obs, info = env.reset(seed=seed)
    observations, states = [obs], []
    for _ in range(max_steps or env.unwrapped.horizon):
        states.append(env.unwrapped.get_state())
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        observations.append(obs)
        if terminated or truncated:
            break
    return observations, states, info


def seeded_episode_record(env, task: str, seed: int = 100000, steps: int = 3) -> dict[str, Any]:
    """What must not depend on the process: the exact state after ``reset(seed)``, and a digest of the
    states and images over a few expert steps (the model, e.g. Lift's cube size, shows in the dynamics and
    the images as well as in the start state). Needs an env with the agentview camera."""
    obs, _ = env.reset(seed=seed)
    start = env.unwrapped.get_state().tolist()
    expert = envs.make_expert(task)
    digest = hashlib.sha256()
    for _ in range(steps):
        digest.update(env.unwrapped.get_state().tobytes())
        digest.update(obs["agentview_image"].tobytes())
        obs, *_ = env.step(expert.act(obs))
    digest.update(obs["agentview_image"].tobytes())
    return {"start": start, "trajectory": digest.hexdigest()}
