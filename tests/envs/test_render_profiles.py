"""Render profiles change what the cameras draw and nothing else.

- physics identity: the same actions from the same seeded reset give bit-identical simulator states
  under ``full`` and ``fast`` on every built-in task, and the compiled masses, inertias and collision
  geoms are equal;
- the images are close (the fast profile's whole point is to look the same to a 64x64 policy);
- the simplified meshes are the ones the manifest records (the same faces on every machine);
- bad profile names are one-line errors.
"""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

from vla_razor import envs
from vla_razor.envs import render_manifest
from vla_razor.envs.render_meshes import MANIFEST, swapped_meshes
from vla_razor.envs.render_profiles import FAST, get_render_profile
from vla_razor.envs.tasks import BUILTIN_TASKS
from vla_razor.errors import BadInputError

# Model arrays that decide the dynamics: any change here would change the physics. Geom arrays are
# compared on the geoms that can collide (a render-only geom's size is its new mesh's extent).
_BODY_ARRAYS = ("body_mass", "body_inertia", "body_ipos", "body_iquat", "dof_damping", "jnt_range")
_GEOM_ARRAYS = ("geom_size", "geom_pos", "geom_quat", "geom_friction", "geom_margin", "geom_dataid")


def _expert_trajectory(env, task: str, seed: int, steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scripted expert's actions and the simulator states they lead to (contacts and grasps
    included: random actions rarely touch anything)."""
    expert = envs.make_expert(task)
    obs, _ = env.reset(seed=seed)
    states, actions = [env.unwrapped.get_state().copy()], []
    for _ in range(steps):
        actions.append(np.asarray(expert.act(obs)))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        states.append(env.unwrapped.get_state().copy())
        if terminated or truncated:
            break
    return actions, states


def _replay(env, seed: int, actions: list[np.ndarray]) -> list[np.ndarray]:
    env.reset(seed=seed)
    states = [env.unwrapped.get_state().copy()]
    for action in actions:
        env.step(action)
        states.append(env.unwrapped.get_state().copy())
    return states


@pytest.mark.parametrize("task", sorted(BUILTIN_TASKS))
def test_fast_profile_keeps_the_physics_bit_identical(task):
    full = envs.make_env(task, use_camera=False, render_profile="full")
    fast = envs.make_env(task, use_camera=False, render_profile="fast")
    try:
        m_full, m_fast = full.unwrapped._rs.sim.model._model, fast.unwrapped._rs.sim.model._model
        for name in _BODY_ARRAYS:
            np.testing.assert_array_equal(getattr(m_full, name), getattr(m_fast, name), err_msg=name)
        np.testing.assert_array_equal(m_full.geom_contype, m_fast.geom_contype)
        np.testing.assert_array_equal(m_full.geom_conaffinity, m_fast.geom_conaffinity)
        colliding = (m_full.geom_contype != 0) | (m_full.geom_conaffinity != 0)
        for name in _GEOM_ARRAYS:
            got, want = getattr(m_fast, name)[colliding], getattr(m_full, name)[colliding]
            np.testing.assert_array_equal(got, want, err_msg=name)
        actions, states = _expert_trajectory(full, task, seed=11, steps=40)
        for a, b in zip(states, _replay(fast, 11, actions), strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        full.close()
        fast.close()


def test_fast_profile_swaps_meshes_and_images_stay_close():
    """The Panda's visual meshes are simplified (objects are not), and the policy's two 64x64 cameras
    see nearly the same picture: mean absolute difference under 2 levels of 255."""
    cameras = ("agentview", "robot0_eye_in_hand")
    full = envs.make_env("grasp_lift_bread", cameras=cameras, render_profile="full")
    fast = envs.make_env("grasp_lift_bread", cameras=cameras, render_profile="fast")
    try:
        faces = {}
        for name, env in (("full", full), ("fast", fast)):
            model = env.unwrapped._rs.sim.model._model
            visual = [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH]
            faces[name] = sum(int(model.mesh_facenum[model.geom_dataid[g]]) for g in visual)
        assert faces["fast"] < 0.3 * faces["full"], faces
        swapped = swapped_meshes(full.unwrapped._rs.model.get_xml(), FAST)
        assert any("link1_vis" in name for name in swapped)
        assert not any("bread" in name.lower() for name in swapped)
        diffs = []
        for seed in (0, 1):
            a, _ = full.reset(seed=seed)
            b, _ = fast.reset(seed=seed)
            for cam in cameras:
                diffs.append(np.abs(a[f"{cam}_image"].astype(float) - b[f"{cam}_image"].astype(float)).mean())
        assert 0 < max(diffs) < 2.0, diffs
    finally:
        full.close()
        fast.close()


def test_simplified_meshes_match_the_manifest():
    """This machine builds every simplified mesh with the faces the manifest recorded."""
    recorded = json.loads(MANIFEST.read_text())
    assert recorded, "empty manifest"
    assert render_manifest.differences(recorded, render_manifest.rebuilt_entries(recorded)) == []


@pytest.mark.slow
def test_manifest_covers_every_swapped_mesh_of_the_builtin_tasks():
    recorded = json.loads(MANIFEST.read_text())
    assert render_manifest.differences(recorded, render_manifest.fresh_manifest()) == []


def test_profile_names_are_checked():
    assert get_render_profile("fast") is FAST
    with pytest.raises(BadInputError, match="unknown render_profile 'fastest'; valid: full, fast"):
        envs.make_env("lift", use_camera=False, render_profile="fastest")
