"""The vector env runs in forkserver workers and batches observations."""

from __future__ import annotations

import numpy as np

from vla_razor import envs


def test_async_vector_env_forkserver():
    vec = envs.make_vector_env("grasp_lift_can", 2, image_size=16, horizon=3)
    try:
        obs, info = vec.reset(seed=[0, 1])
        assert obs["agentview_image"].shape == (2, 16, 16, 3)
        assert obs["proprio"].shape == (2, 9) and obs["object_state"].shape == (2, 10)
        assert list(obs["instruction"]) == ["grasp and lift the can"] * 2
        assert not np.allclose(obs["object_state"][0], obs["object_state"][1])
        for _ in range(3):
            obs, reward, terminated, truncated, info = vec.step(np.zeros((2, 7), dtype=np.float32))
        assert reward.shape == (2,) and truncated.all() and not terminated.any()
    finally:
        vec.close()
