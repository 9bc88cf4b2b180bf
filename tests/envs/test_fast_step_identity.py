"""The optimised step (``fast_step=True``: fast control loop + culled renders) is bit-identical to the
code path before it (``fast_step=False``: robosuite's own ``step`` and ``sim.render``).

The committed policies were trained on the old path's images, so every observation (both of the policy's
cameras, proprio, object state), reward, success flag and simulator state must match bit for bit, for
the same seed and actions.
"""

from __future__ import annotations

import hashlib

import mujoco
import numpy as np
import pytest

from vla_razor import envs
from vla_razor.envs.culling import culler_for, hidden_from_scene

POLICY_CAMERAS = ("agentview", "robot0_eye_in_hand")  # pi0's image keys (assets/pi0_tiny/policy_config.json)
TASKS = ("lift", "door", "grasp_lift_can", "grasp_lift_bread")
SEED = 100003
EXPERT_STEPS = 20


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


def _record(obs: dict, env, *extra) -> tuple:
    arrays = tuple((key, _digest(value)) for key, value in sorted(obs.items()) if key != "instruction")
    return (*arrays, ("state", _digest(env.get_state())), *extra)


def _make(task: str, fast: bool):
    return envs.make_env(
        task,
        cameras=POLICY_CAMERAS,
        image_size=64,
        fast_step=fast,
        render_camera="frontview",
        render_size=96,
    )


def _replay(env, task: str, seed: int, actions: list[np.ndarray] | None):
    """Records after reset and after each step; the expert acts when ``actions`` is None (and they are
    returned, so the other env replays exactly the same ones)."""
    obs, info = env.reset(seed=seed)
    records = [_record(obs, env, info["is_success"])]
    expert = envs.make_expert(task)
    taken = []
    for i in range(EXPERT_STEPS if actions is None else len(actions)):
        action = expert.act(obs) if actions is None else actions[i]
        taken.append(np.asarray(action, dtype=np.float64).copy())
        obs, reward, terminated, truncated, info = env.step(action)
        records.append(_record(obs, env, reward, terminated, truncated, info["is_success"]))
        if terminated or truncated:
            break
    records.append(("video_frame", _digest(env.render_frame())))
    return records, taken


@pytest.mark.parametrize("task", TASKS)
def test_fast_step_is_bit_identical_on_the_expert(task):
    """The scripted expert's first 20 actions: every observation, reward and state hash is equal."""
    reference, fast = _make(task, fast=False), _make(task, fast=True)
    try:
        assert reference._fast_loop is None and not reference._cull
        assert fast._fast_loop is not None and fast._cull, "the fast path must actually be in use"
        want, actions = _replay(reference, task, SEED, None)
        got, _ = _replay(fast, task, SEED, actions)
        assert len(want) == len(got) >= 3
        for step, (w, g) in enumerate(zip(want, got, strict=True)):
            assert w == g, f"{task}: record {step} differs: {w} != {g}"
    finally:
        reference.close()
        fast.close()


def test_fast_step_is_bit_identical_on_random_actions():
    """Wide random actions across two episodes (sweeping arm poses the expert never visits), then
    reset_to: the two paths stay bit-identical."""
    reference, fast = _make("lift", fast=False), _make("lift", fast=True)
    try:
        rng = np.random.default_rng(7)
        for seed in (1, 2):
            actions = list(np.clip(rng.normal(0.0, 0.7, size=(30, 7)), -1, 1))
            want, _ = _replay(reference, "lift", seed, actions)
            got, _ = _replay(fast, "lift", seed, actions)
            assert want == got
        state = reference.get_state()
        np.testing.assert_array_equal(
            reference.reset_to(state)["agentview_image"], fast.reset_to(state)["agentview_image"]
        )
        action = np.full(7, 0.5)
        assert _record(reference.step(action)[0], reference) == _record(fast.step(action)[0], fast)
    finally:
        reference.close()
        fast.close()


def test_culling_removes_geometry_only_when_exact():
    """The culler hides most of the arm from the policy's cameras, and nothing once shadows are on (a
    geom outside the view can cast a shadow into it)."""
    env = envs.make_env("lift", cameras=POLICY_CAMERAS, image_size=64)
    try:
        env.reset(seed=SEED)
        sim = env.robosuite_env.sim
        ctx, model, data = sim._render_context_offscreen, sim.model._model, sim.data._data
        culler = culler_for(ctx, model)
        triangles = model.mesh_facenum[model.geom_dataid[culler.meshes]]
        for camera in POLICY_CAMERAS:
            ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            ctx.cam.fixedcamid = model.camera(camera).id
            mujoco.mjv_updateCamera(model, data, ctx.cam, ctx.scn)
            hidden = culler.hidden_geoms(data, ctx.scn, ctx.vopt, 64, 64)
            share = model.mesh_facenum[model.geom_dataid[hidden]].sum() / triangles.sum()
            assert share > 0.25, (camera, share)
            ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 1
            assert culler.hidden_geoms(data, ctx.scn, ctx.vopt, 64, 64).size == 0
            ctx.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        # Hidden geoms leave the scene while it is built, and come back afterwards.
        rgba = model.geom_rgba.copy()
        mujoco.mjv_updateScene(model, data, ctx.vopt, ctx.pert, ctx.cam, mujoco.mjtCatBit.mjCAT_ALL, ctx.scn)
        full = ctx.scn.ngeom
        with hidden_from_scene(model, hidden):
            mujoco.mjv_updateScene(
                model, data, ctx.vopt, ctx.pert, ctx.cam, mujoco.mjtCatBit.mjCAT_ALL, ctx.scn
            )
        assert ctx.scn.ngeom == full - len(hidden)
        np.testing.assert_array_equal(model.geom_rgba, rgba)
    finally:
        env.close()
