"""A fixed, cached set of new-task observations on which every checkpoint's divergence from pi0 is measured.

RL's Razor measures E_{x ~ new task}[KL(pi0(.|x) || pi(.|x))]; here x are the observations pi0 itself
visits when it attempts the new task (sampled at temperature 1 from pi0, fixed seeds), subsampled to a
fixed count and stored as .npz, so every checkpoint is scored on exactly the same states.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.stats import clustered_mean
from vla_razor.io_utils import atomic_path
from vla_razor.metrics.divergences import action_token_divergences
from vla_razor.rollouts import EnvPool, EpisodeJob, play_episodes
from vla_razor.sampling import seeded_generator

log = logging.getLogger(__name__)


def collect_kl_states(
    policy: Any,
    pool: EnvPool,
    env_kwargs: dict[str, Any],
    seeds: list[int],
    *,
    max_states: int,
    sample_seed: int = 0,
) -> dict[str, Any]:
    """Roll out pi0 (``policy.reference()``) on the new task and keep ``max_states`` of its observations."""
    if max_states <= 0:
        raise BadInputError(f"max_states must be > 0, got {max_states}")
    if not seeds:
        raise BadInputError("KL states need at least one seed (kl_state_seeds must be > 0)")
    task = str(env_kwargs["task"])
    jobs = [EpisodeJob(dict(env_kwargs), int(s)) for s in seeds]
    with policy.reference():
        played = play_episodes(
            policy,
            pool,
            jobs,
            greedy=False,
            temperature=1.0,
            generator=seeded_generator(sample_seed, policy.device),
            keep_observations=True,
        )
    # Episode by episode in seed order, each in step order: the subsample below depends only on the seeds.
    observations = [obs for p in played for obs in p.observations]
    episode_of = [p.job.seed for p in played for _ in p.observations]
    rng = np.random.default_rng(sample_seed)
    chosen = np.sort(rng.choice(len(observations), size=min(max_states, len(observations)), replace=False))
    picked = [observations[i] for i in chosen]
    keys = [k for k in picked[0] if k != "instruction"]
    return {
        "obs": {k: np.stack([o[k] for o in picked]) for k in keys},
        "instructions": [str(o["instruction"]) for o in picked],
        "task": task,
        "seeds": list(seeds),
        # The episode (seed) each state came from: states of one episode are correlated, so standard
        # errors of per-state means cluster by it.
        "episodes": [int(episode_of[i]) for i in chosen],
    }


def save_kl_states(path: str | Path, states: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            **{f"obs/{k}": v for k, v in states["obs"].items()},
            instructions=np.array(states["instructions"]),
            task=np.array(states["task"]),
            seeds=np.array(states["seeds"]),
            episodes=np.array(states["episodes"], dtype=np.int64),
        )
    return Path(path)


def load_kl_states(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"KL state cache {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {
            "obs": {k[4:]: data[k] for k in data.files if k.startswith("obs/")},
            "instructions": [str(s) for s in data["instructions"]],
            "task": str(data["task"]),
            "seeds": [int(s) for s in data["seeds"]],
            # Caches written before episode ids were kept: each state its own cluster (the old, naive SE).
            "episodes": [int(e) for e in data["episodes"]]
            if "episodes" in data.files
            else list(range(len(data["instructions"]))),
        }


@torch.no_grad()
def measure_divergences(
    policy: Any, states: dict[str, Any], *, batch_size: int = 64, prefix_samples: int = 1, seed: int = 0
) -> dict[str, float]:
    """Mean forward KL(pi0||pi), reverse KL, TV and L2 over the cached states (pi0 = ``policy.reference()``),
    each with its standard error clustered by the episode the states came from."""
    n = len(states["instructions"])
    per: dict[str, list[torch.Tensor]] = {}
    generator = seeded_generator(seed, policy.device)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        obs = {k: v[start:stop] for k, v in states["obs"].items()}
        batch = policy.prepare(obs, states["instructions"][start:stop])
        values = action_token_divergences(
            policy, policy, batch, num_prefix_samples=prefix_samples, generator=generator
        )
        for key, per_state in values.items():
            per.setdefault(key, []).append(per_state.double().cpu())
    out: dict[str, float] = {"kl_states": float(n)}
    episodes = np.asarray(states["episodes"])
    for key, chunks in per.items():
        summary = clustered_mean(torch.cat(chunks).numpy(), episodes)
        out[key] = summary.mean
        out[f"{key}_sem"] = summary.se
    return out
