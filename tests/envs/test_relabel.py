"""The relabelling expert (DAgger's labels): it solves the task from a fresh reset and takes over from
states another policy left, reading its phase from privileged state alone."""

from __future__ import annotations

import numpy as np
import pytest

from vla_razor.envs import make_env, make_expert
from vla_razor.errors import BadInputError


def _run(env, seed: int, noisy_steps: int) -> bool:
    """``noisy_steps`` of a noisy scripted expert (a stand-in for a learner's states), then the labels."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    expert = make_expert(env.spec_task.name)
    for t in range(env.horizon):
        if t < noisy_steps:
            action = (
                expert.act(obs) + rng.normal(0.0, 0.6, 7) if rng.random() < 0.7 else rng.uniform(-1, 1, 7)
            )
        else:
            action = obs["expert_action"]
        obs, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
        if terminated or truncated:
            return bool(info["is_success"])
    return False


@pytest.mark.parametrize("task", ["pick_place_bread", "grasp_lift_can", "lift"])
def test_relabelling_expert_solves_the_task_from_reset(task: str) -> None:
    env = make_env(task, expert_labels=True, use_camera=False)
    assert "expert_action" in env.observation_space.spaces
    assert all(_run(env, seed, noisy_steps=0) for seed in (11, 12))


def test_relabelling_expert_takes_over_from_perturbed_states() -> None:
    # 25 steps of a heavily perturbed expert leave the bread anywhere from untouched to half-carried;
    # the labels must finish the job. A margin of 2 in 8 covers CPUs that round a contact differently.
    env = make_env("pick_place_bread", expert_labels=True, use_camera=False, horizon=200)
    wins = [_run(env, seed, noisy_steps=25) for seed in range(100, 108)]
    assert sum(wins) >= 6, wins


def test_expert_labels_only_where_a_relabelling_expert_exists() -> None:
    assert "expert_action" not in make_env("lift", use_camera=False).observation_space.spaces
    with pytest.raises(BadInputError, match="task 'door' has no relabelling expert"):
        make_env("door", expert_labels=True, use_camera=False)
