"""Every task is registered, builds, and passes gymnasium's env checker."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vla_razor import envs


def test_task_table_has_required_tasks():
    required = {
        *(
            f"{fam}_{obj}"
            for fam in ("pick_place", "grasp_lift")
            for obj in ("can", "bread", "milk", "cereal")
        ),
        "lift",
        "stack",
        "door",
        "nut_assembly_round",
    }
    assert required <= set(envs.TASKS)
    for spec in envs.TASKS.values():
        assert spec.gym_id.startswith("vla_razor/") and spec.gym_id in gym.registry
        assert spec.instruction and spec.horizon > 0


def _check_in_one_process(tasks: list[str]) -> None:
    """gymnasium's checker, determinism included, over these ids, one after another in this process.

    ``gym.make`` gives the env a spec, without which ``check_env`` skips its seeded-reset and step
    determinism assertions. Each env is checked after the previous ones were built, rendered and closed
    (the checker itself builds and closes a second copy): 11 of 12 ids failed this when envs freed their
    GL objects in whichever GL context was current. "Similar but not equal" warnings fail too.
    """
    for task in tasks:
        spec = envs.TASKS[task]
        env = gym.make(spec.gym_id, image_size=16, horizon=5)
        try:
            assert env.unwrapped.spec is not None and env.unwrapped.spec.nondeterministic is False
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_env(env.unwrapped, skip_render_check=True)
            inexact = [str(w.message) for w in caught if "although similar" in str(w.message)]
            assert not inexact, f"{spec.gym_id}: {inexact}"
            obs, _ = env.reset(seed=0)
            assert obs["agentview_image"].shape == (16, 16, 3) and obs["agentview_image"].dtype == np.uint8
            assert obs["proprio"].shape == (9,) and obs["proprio"].dtype == np.float32
            assert obs["object_state"].shape == (spec.object_state_dim,)
            assert obs["instruction"] == spec.instruction, task
        finally:
            env.close()


def test_check_env_one_id_per_family_in_one_process():
    """The default run: one task of each family (a robosuite env and its object), built one after
    another. The family's other objects differ only in the object; ``-m slow`` checks every id."""
    first_of_family = {spec.family: name for name, spec in reversed(list(envs.TASKS.items()))}
    tasks = list(first_of_family.values())
    assert len(tasks) >= 5, tasks
    _check_in_one_process(tasks)


@pytest.mark.slow  # 13 ids: about 70 s on 2 cores beside the other test worker
def test_check_env_every_id_in_one_process():
    _check_in_one_process(list(envs.TASKS))


def test_gym_make_by_id():
    env = gym.make("vla_razor/Lift-v0", use_camera=False, horizon=3)
    obs, _ = env.reset(seed=1)
    assert "agentview_image" not in obs and obs["object_state"].shape == (7,)
    env.close()


def test_env_metadata_rebuilds_same_env():
    env = envs.make_env("grasp_lift_can", use_camera=False, horizon=7, placement={"x_range": (-0.02, 0.02)})
    meta = env.unwrapped.env_metadata()
    import json

    clone = envs.make_env(**json.loads(json.dumps(meta)))
    a, _ = env.reset(seed=3)
    b, _ = clone.reset(seed=3)
    np.testing.assert_array_equal(a["object_state"], b["object_state"])
    assert clone.horizon == 7
    env.close()
    clone.close()
