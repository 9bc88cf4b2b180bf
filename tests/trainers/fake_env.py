"""A tiny vectorised 'reach the target' task with gymnasium's same-step autoreset semantics.

It has no simulator (so PPO's machinery can be tested in seconds) but is a real decision problem:
the episode succeeds when the first action dimension (decoded from the policy's action tokens) lands
above a threshold; otherwise it continues until the horizon truncates it.
"""

from __future__ import annotations

import numpy as np


class FakeReachVectorEnv:
    def __init__(
        self, num_envs: int = 4, horizon: int = 3, threshold: float = 0.5, image_size: int = 32
    ) -> None:
        self.num_envs = num_envs
        self.horizon = horizon
        self.threshold = threshold
        self.image_size = image_size
        self.t = np.zeros(num_envs, dtype=np.int64)
        self.rng = np.random.default_rng(0)

    def _obs(self, n: int | None = None) -> dict:
        n = self.num_envs if n is None else n
        images = self.rng.integers(0, 255, size=(n, self.image_size, self.image_size, 3), dtype=np.uint8)
        return {"agentview_image": images, "instruction": tuple(["lift the red cube"] * n)}

    def reset(self, seed=None, options=None):
        if seed is not None:
            first = seed[0] if isinstance(seed, list | tuple) else seed
            self.rng = np.random.default_rng(first)
        self.t[:] = 0
        return self._obs(), {}

    def step(self, actions: np.ndarray):
        self.t += 1
        success = actions[:, 0] > self.threshold
        terminated = success
        truncated = ~success & (self.t >= self.horizon)
        reward = success.astype(np.float32)
        obs = self._obs()
        info: dict = {}
        done = terminated | truncated
        if done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            for i in range(self.num_envs):
                final_obs[i] = {
                    "agentview_image": obs["agentview_image"][i],
                    "instruction": "lift the red cube",
                }
            info["final_obs"] = final_obs
            info["final_info"] = {"is_success": success.copy(), "_is_success": done.copy()}
            info["_final_obs"] = done.copy()
            self.t[done] = 0
        info["is_success"] = np.zeros(self.num_envs, dtype=bool)
        info["_is_success"] = ~done
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        pass
