"""Single-environment episodes for any actor: the scripted expert or a VLA checkpoint.

Used by ``vla-razor rollout`` (videos) and by evaluation code that needs per-episode control. Batched,
vectorised collection for training lives with the trainers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vla_razor.errors import BadInputError
from vla_razor.sampling import seeded_generator
from vla_razor.video import EpisodeRecorder

log = logging.getLogger(__name__)


class Actor(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    length: int
    episode_return: float
    error: str | None = None


class PolicyActor:
    """Adapts a batched VLA policy to one environment: adds the batch dimension, decodes one action."""

    def __init__(self, policy: Any, *, greedy: bool = True, temperature: float = 1.0, seed: int = 0) -> None:
        self.policy = policy
        self.greedy = greedy
        self.temperature = temperature
        self.generator = seeded_generator(seed, policy.device)

    def reset(self) -> None:
        """VLA policies here are memoryless (one frame in, one action out)."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        batched = {k: np.asarray(v)[None] for k, v in obs.items() if k != "instruction"}
        batch = self.policy.prepare(batched, [str(obs["instruction"])])
        with torch.no_grad():
            out = self.policy.act(
                batch, temperature=self.temperature, greedy=self.greedy, generator=self.generator
            )
        return np.asarray(out.actions[0], dtype=np.float32)


def make_actor(
    family: str,
    *,
    task: str,
    checkpoint: str | None = None,
    greedy: bool = True,
    temperature: float = 1.0,
    seed: int = 0,
) -> Actor:
    """``family='expert'`` gives the task's scripted expert; anything else loads ``checkpoint``."""
    if family == "expert":
        from vla_razor import envs

        return envs.make_expert(task)
    if not checkpoint:
        raise BadInputError(f"policy={family} needs checkpoint=DIR (a saved policy directory); got none")
    from vla_razor.policies import load_policy

    policy = load_policy(checkpoint)
    if policy.family != family:
        raise BadInputError(
            f"checkpoint {checkpoint!r} holds a {policy.family!r} policy but policy={family} was requested"
        )
    policy.eval()
    return PolicyActor(policy, greedy=greedy, temperature=temperature, seed=seed)


def run_episode(env: Any, actor: Actor, seed: int, recorder: EpisodeRecorder | None = None) -> EpisodeResult:
    """Run one seeded episode to termination (success or simulator error) or truncation (horizon)."""
    actor.reset()
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    if recorder is not None:
        recorder.add(_frame(base, obs))
    total, steps = 0.0, 0
    while True:
        action = actor.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        if recorder is not None:
            recorder.add(_frame(base, obs))
        if terminated or truncated:
            error = info.get("sim_error")
            if error:
                log.warning("episode seed=%d ended by a simulator error: %s", seed, error)
            return EpisodeResult(seed, bool(info.get("is_success", False)), steps, total, error)


def _frame(base: Any, obs: dict[str, Any]) -> np.ndarray:
    # Prefer the dedicated (higher-resolution) render camera; otherwise show what the policy sees.
    frame = base.render_frame() if hasattr(base, "render_frame") else None
    if frame is not None:
        return frame
    for key, value in obs.items():
        if key.endswith("_image"):
            return np.asarray(value)
    raise BadInputError("no camera image in the observation and no render camera configured; enable a camera")
