"""A tiny vectorised 'reach the target' task with gymnasium's same-step autoreset semantics.

It has no simulator (so PPO's machinery can be tested in seconds) but is a real decision problem:
the episode succeeds when the first action dimension (decoded from the policy's action tokens) lands
above a threshold; otherwise it continues until the horizon truncates it.
"""

from __future__ import annotations

import numpy as np
import torch


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


def success_probability(policy, threshold: float = 0.5, n: int = 32, seed: int = 12345) -> float:
    """Exact P(success) of ``policy`` on the fake task, averaged over ``n`` fixed random images.

    The first action token alone decides success, and its distribution does not depend on the tokens
    after it, so one teacher-forced pass gives the probability mass of the bins that decode above
    ``threshold``. Unlike sampled episode success this has no sampling noise, which lets a learning
    test keep wide margins on every CPU.
    """
    obs, _ = FakeReachVectorEnv(num_envs=n, horizon=1).reset(seed=seed)
    batch = policy.prepare(obs, list(obs["instruction"]))
    tok = policy.action_tokenizer
    all_slots = tok.bin_slots_to_ids(torch.arange(tok.n_bins))
    first_dim = policy.decode_actions(torch.stack([all_slots] * tok.action_dim, dim=1))[:, 0]
    good = torch.as_tensor(first_dim > threshold)
    with torch.no_grad():
        probs = policy.score(batch, all_slots[:1].repeat(n, tok.action_dim)).logits[:, 0].softmax(-1)
    return float(probs[:, good.to(probs.device)].sum(-1).mean())


def sabotage_training_scores(policy, *, shift: float = 0.0, nan_after: int | None = None) -> None:
    """Corrupt ``policy.score`` in training mode only (the update's passes), to drive a trainer into
    its early-stop or NaN path: log-probs shifted by ``shift`` (approx_kl grows), or NaN from the
    ``nan_after``-th call on. Eval-mode scoring (behaviour log-probs, KL probes) is left alone."""
    score = policy.score
    calls = {"n": 0}

    def sabotaged(*args, **kwargs):
        out = score(*args, **kwargs)
        if policy.training:
            calls["n"] += 1
            if nan_after is not None and calls["n"] > nan_after:
                out.log_prob = out.log_prob * float("nan")
            elif shift:
                out.log_prob = out.log_prob + shift
        return out

    policy.score = sabotaged
