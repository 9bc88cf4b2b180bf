"""The culler's numpy path (``_hidden_numpy``, used where numba is not installed, as in the simulator bundle
of ``benchmarks/sim_bundle.py``) hides exactly the geoms the numba kernel hides, on real scenes: the
policy's cameras and a render camera over random-action rollouts, and random free views of each scene."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import pytest

from vla_razor import envs
from vla_razor.envs import culling
from vla_razor.envs.culling import culler_for

ROOT = Path(__file__).resolve().parents[2]
POLICY_CAMERAS = ("agentview", "robot0_eye_in_hand")
TASKS = ("lift", "door", "grasp_lift_bread", "pick_place_can")


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Every culling decision is taken by both paths and must agree; counts what was exercised."""
    seen: Counter = Counter()
    box_status = culling._box_status_numpy

    def counting_box_status(world: np.ndarray, *args: Any) -> Any:
        seen["piece_tests" if world.shape[0] % culling.SPLIT**3 == 0 and world.shape[0] else "box_tests"] += 1
        return box_status(world, *args)

    def both(*args: Any) -> np.ndarray:
        kernel = culling._hidden_kernel(*args)
        numpy_ids = culling._hidden_numpy(*args)
        np.testing.assert_array_equal(numpy_ids, kernel)
        seen["decisions"] += 1
        seen["hidden"] += len(kernel)
        return kernel

    monkeypatch.setattr(culling, "_box_status_numpy", counting_box_status)
    monkeypatch.setattr(culling, "_hidden", both)
    return seen


@pytest.mark.skipif(not culling.NUMBA, reason="compares against the numba kernel")
def test_numpy_path_hides_what_the_kernel_hides(compared: Counter) -> None:
    rng = np.random.default_rng(20240611)
    for task in TASKS:
        env = envs.make_env(
            task, cameras=POLICY_CAMERAS, image_size=64, render_camera="frontview", render_size=96
        )
        try:
            env.reset(seed=int(rng.integers(1 << 30)))
            for _ in range(8):  # the policy cameras (and the render camera) are culled on every step
                env.step(rng.uniform(-1.0, 1.0, size=7).astype(np.float32))
                env.render()
            sim = env.robosuite_env.sim
            ctx, model, data = sim._render_context_offscreen, sim.model._model, sim.data._data
            culler = culler_for(ctx, model)
            for _ in range(60):  # free views all around the table and the robot
                ctx.cam.type = mujoco.mjtCamera.mjCAMERA_FREE
                ctx.cam.lookat[:] = rng.uniform([-0.6, -0.4, 0.7], [0.3, 0.4, 1.3])
                ctx.cam.distance = rng.uniform(0.2, 2.5)
                ctx.cam.azimuth = rng.uniform(0.0, 360.0)
                ctx.cam.elevation = rng.uniform(-85.0, 30.0)
                mujoco.mjv_updateCamera(model, data, ctx.cam, ctx.scn)
                width, height = (64, 64) if rng.random() < 0.5 else (int(rng.integers(32, 160)), 64)
                culler.hidden_geoms(data, ctx.scn, ctx.vopt, width, height)
        finally:
            env.close()
    # Both tests of the kernel, and its pieces, were exercised (and agreed).
    assert compared["decisions"] > 300 and compared["hidden"] > 0, compared
    assert compared["piece_tests"] > 0 and compared["box_tests"] > 0, compared


NO_NUMBA = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("identity", sys.argv[1])
identity = importlib.util.module_from_spec(spec)
spec.loader.exec_module(identity)
import robosuite.macros
from vla_razor.envs import culling
identity.test_fast_step_is_bit_identical_on_the_expert("lift")
print(json.dumps({"robosuite_numba": robosuite.macros.ENABLE_NUMBA, "culling_numba": culling.NUMBA}))
"""


def test_without_numba_the_fast_step_stays_bit_identical(tmp_path: Path) -> None:
    """With the bundle's placeholder numba: robosuite's kernels run as Python, the culler takes its numpy
    path, and the fast step (culled renders included) still matches robosuite's own step bit for bit."""
    spec = importlib.util.spec_from_file_location("sim_bundle", ROOT / "benchmarks" / "sim_bundle.py")
    assert spec is not None and spec.loader is not None
    sim_bundle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sim_bundle)
    sim_bundle.write_placeholders(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_NUMBA, str(ROOT / "tests" / "envs" / "test_fast_step_identity.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"robosuite_numba": False, "culling_numba": False}
