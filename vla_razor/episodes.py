"""Recorded episodes for any actor: the scripted expert or a VLA checkpoint, through the rollout engine.

Used by ``vla-razor rollout`` (videos). A checkpoint plays through :func:`vla_razor.rollouts.play_episodes`
like every evaluation; the expert is not a batched policy (it keeps per-episode state), so each of its
episodes runs whole inside an env worker of the same pool.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_razor import envs
from vla_razor.errors import BadInputError
from vla_razor.policies import load_policy
from vla_razor.rollouts import EnvPool, EpisodeJob, SeededEpisode, play_episodes
from vla_razor.rollouts.calls import imap_on_envs
from vla_razor.sampling import Sampling, seeded_generator

log = logging.getLogger(__name__)


@dataclass
class RecordedEpisode:
    episode: SeededEpisode
    frames: list[np.ndarray] = field(default_factory=list)


def load_actor_policy(family: str, checkpoint: str | None) -> Any | None:
    """The policy behind ``family`` (None for the scripted expert), in eval mode."""
    if family == "expert":
        return None
    if not checkpoint:
        raise BadInputError(f"policy={family} needs checkpoint=DIR (a saved policy directory); got none")
    policy = load_policy(checkpoint)
    if policy.family != family:
        raise BadInputError(
            f"checkpoint {checkpoint!r} holds a {policy.family!r} policy but policy={family} was requested"
        )
    return policy.eval()


def record_episodes(
    pool: EnvPool,
    policy: Any | None,
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
    *,
    greedy: bool = True,
    temperature: float = 1.0,
    sample_seed: int = 0,
) -> list[RecordedEpisode]:
    """One recorded episode per seed of ``env_kwargs['task']``, by ``policy`` (None: the task's expert)."""
    if policy is None:
        jobs = [(int(s),) for s in seeds]
        return list(imap_on_envs(pool, env_kwargs, expert_episode, jobs, _died))
    played = play_episodes(
        policy,
        pool,
        [EpisodeJob(env_kwargs, int(s), record=True) for s in seeds],
        sampling=Sampling(
            greedy=greedy,
            temperature=temperature,
            generator=None if greedy else seeded_generator(sample_seed, policy.device),
        ),
    )
    return [RecordedEpisode(p.episode, p.frames) for p in played]


def expert_episode(env: Any, seed: int) -> RecordedEpisode:
    """One seeded episode of the task's scripted expert with a video frame per step (runs in a worker)."""
    base = env.unwrapped
    expert = envs.make_expert(base.spec_task.name)
    expert.reset()
    obs, _ = env.reset(seed=seed)
    frames = [_frame(base, obs)]
    steps = 0
    while True:
        obs, _reward, terminated, truncated, info = env.step(expert.act(obs))
        steps += 1
        frames.append(_frame(base, obs))
        if terminated or truncated:
            error = info.get("sim_error")
            if error:
                log.warning("episode seed=%d ended by a simulator error: %s", seed, error)
            return RecordedEpisode(
                SeededEpisode(seed, bool(info.get("is_success", False)), steps, error), frames
            )


def _died(job: tuple[Any, ...], reason: str) -> RecordedEpisode:
    return RecordedEpisode(SeededEpisode(int(job[0]), False, 0, f"env worker died: {reason}"))


def _frame(base: Any, obs: dict[str, Any]) -> np.ndarray:
    # Prefer the dedicated (higher-resolution) render camera; otherwise show what the policy sees.
    frame = base.render_frame() if hasattr(base, "render_frame") else None
    if frame is not None:
        return frame
    for key, value in obs.items():
        if key.endswith("_image"):
            return np.asarray(value)
    raise BadInputError("no camera image in the observation and no render camera configured; enable a camera")
