"""Tasks defined in config files: validation, runtime registration, the env they build, worker processes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from vla_razor import envs
from vla_razor.config import config_dir
from vla_razor.errors import BadInputError

# The smallest useful definition: robosuite's square nut, its pose as the object state, no expert.
MINIMAL = {
    "robosuite_env": "NutAssemblySquare",
    "instruction": "put the square nut on the square peg",
    "horizon": 20,
    "objects": ["SquareNut"],
    "placement": {"sampler": "SquareNutSampler", "x_range": [-0.115, -0.11], "y_range": [0.11, 0.225]},
}


@pytest.fixture
def registered():
    """Register config tasks for one test, then remove them from both registries."""
    names: list[str] = []

    def register(name: str, define: dict) -> envs.TaskSpec:
        spec = envs.register_task(envs.task_from_config(name, define))
        names.append(name)
        return spec

    yield register
    for name in names:
        spec = envs.TASKS.pop(name)
        gym.registry.pop(spec.gym_id, None)


def test_minimal_task_builds_a_gym_env_with_object_poses(registered) -> None:
    spec = registered("square_nut_poses", MINIMAL)
    assert spec.gym_id == "vla_razor/SquareNutPoses-v0" and spec.gym_id in gym.registry
    env = gym.make(spec.gym_id, image_size=16)  # the way users build envs
    try:
        check_env(env.unwrapped, skip_render_check=True)
        obs, _ = env.reset(seed=3)
        assert obs["instruction"] == "put the square nut on the square peg"
        assert obs["object_state"].shape == (7,)  # SquareNut's position and quaternion
        x, y = obs["object_state"][:2] - env.unwrapped.robosuite_env.table_offset[:2]
        assert -0.115 - 1e-6 <= x <= -0.11 + 1e-6 and 0.11 - 1e-6 <= y <= 0.225 + 1e-6
        assert env.unwrapped.cameras == ("agentview",)  # the definition's default cameras
        _, reward, terminated, truncated, info = env.step(np.zeros(7))
        assert (reward, terminated, info["is_success"]) == (0.0, False, False)
    finally:
        env.close()
    with pytest.raises(BadInputError, match="'square_nut_poses' has no scripted expert"):
        envs.make_expert("square_nut_poses")


def test_registration_is_idempotent_and_names_are_not_reused(registered) -> None:
    registered("square_nut_twice", MINIMAL)
    # The same definition again (a worker process, a second config load) is a no-op ...
    assert envs.register_task(envs.task_from_config("square_nut_twice", MINIMAL)).name == "square_nut_twice"
    # ... another definition under the same name, or a built-in name, is not.
    with pytest.raises(BadInputError, match="'square_nut_twice' is already defined differently"):
        envs.register_task(envs.task_from_config("square_nut_twice", {**MINIMAL, "horizon": 30}))
    with pytest.raises(BadInputError, match="'lift' is a built-in task"):
        envs.register_task(envs.task_from_config("lift", MINIMAL))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"horizn": 10}, r"unknown key\(s\) horizn in define; valid: robosuite_env, instruction, placement"),
        (
            {"robosuite_env": "NutAssemblyHexagon"},
            r"unknown robosuite environment 'NutAssemblyHexagon'; valid: .*Lift",
        ),
        ({"instruction": "put the nut on the peg!"}, "instruction 'put the nut on the peg!' must be"),
        ({"placement": {"x_range": [0, 0.1], "y_range": [0, 0.1]}}, "placement needs `sampler`"),
        (
            {"placement": {**MINIMAL["placement"], "x_range": [0.1, -0.1]}},
            r"placement x_range=\[0.1, -0.1\] must be two finite numbers with low <= high",
        ),
        ({"objects": []}, "give `objects`"),
        (
            {"success": {"_target_": "vla_razor.envs.task_state.no_such_check"}},
            "success=.*cannot be imported",
        ),
        ({"expert": {"_target_": "builtins.dict"}}, "needs act\\(obs\\) and reset\\(\\) methods"),
        ({"reward": "dense"}, "reward='dense'; valid: binary, shaped"),
    ],
)
def test_bad_definitions_are_one_line_errors(change: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        envs.task_from_config("bad_task", {**MINIMAL, **change})


def test_wrong_sampler_is_named_with_the_valid_ones(registered) -> None:
    registered(
        "square_nut_sampler", {**MINIMAL, "placement": {**MINIMAL["placement"], "sampler": "HexSampler"}}
    )
    with pytest.raises(BadInputError, match="placement sampler 'HexSampler' not found.*SquareNutSampler"):
        envs.make_env("square_nut_sampler", use_camera=False)


def test_worked_example_expert_solves_it_in_worker_processes(registered) -> None:
    # The shipped worked example, as the CLI reads it: its expert and success check via _target_, and a
    # vector env whose forkserver workers never saw the parent's registration.
    define = yaml.safe_load((config_dir() / "task" / "nut_assembly_square.yaml").read_text())["define"]
    registered("nut_assembly_square", define)
    venv = envs.make_vector_env("nut_assembly_square", 2, use_camera=False)
    experts = [envs.make_expert("nut_assembly_square") for _ in range(2)]
    try:
        obs, _ = venv.reset(seed=[0, 1])
        done = np.zeros(2, dtype=bool)
        success = np.zeros(2, dtype=bool)
        for _ in range(100):
            actions = np.stack([experts[i].act({k: v[i] for k, v in obs.items()}) for i in range(2)]).astype(
                np.float32
            )
            obs, _, terminated, truncated, info = venv.step(actions)
            success |= ~done & np.asarray(terminated) & np.asarray(info["is_success"])
            done |= np.asarray(terminated) | np.asarray(truncated)
            if done.all():
                break
        assert success.all()
    finally:
        venv.close()


def test_custom_python_plugs_in_through_target(registered) -> None:
    # A distinct task in the Lift scene: another placement and instruction, the user's own success check
    # (tests/envs/custom_task.py, with an argument) and a library expert configured through _target_.
    registered(
        "raise_block",
        {
            "robosuite_env": "Lift",
            "instruction": "raise the red block",
            "horizon": 50,
            "objects": ["cube"],
            "placement": {"sampler": "ObjectSampler", "x_range": [0.04, 0.06], "y_range": [-0.02, 0.02]},
            "success": {"_target_": "tests.envs.custom_task.cube_above_table", "height": 0.09},
            "expert": {
                "_target_": "vla_razor.envs.experts.PickPlaceExpert",
                "lift_only": True,
                "yaw_period": 1.5707963,
                "lift_height": 0.12,
            },
        },
    )
    env = envs.make_env("raise_block", use_camera=False)
    expert = envs.make_expert("raise_block")
    try:
        obs, _ = env.reset(seed=0)
        assert (
            0.04 - 1e-6 <= obs["object_state"][0] - env.unwrapped.robosuite_env.table_offset[0] <= 0.06 + 1e-6
        )
        heights = []
        for _ in range(50):
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            heights.append(float(obs["object_state"][2]))
            if terminated or truncated:
                break
        # Terminated by the custom check, once the cube rose 9 cm (robosuite's own Lift needs only 4 cm).
        assert terminated and info["is_success"]
        assert heights[-1] - env.unwrapped.robosuite_env.model.mujoco_arena.table_offset[2] > 0.09
    finally:
        env.close()
