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

from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.io_utils import atomic_path
from vla_razor.rollouts import EnvPool, EpisodeJob, play_episodes, policy_env_kwargs
from vla_razor.sampling import Sampling, seeded_generator

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
            sampling=Sampling(
                greedy=False, temperature=1.0, generator=seeded_generator(sample_seed, policy.device)
            ),
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


def state_caches(pi0: Any, suite: SuiteSpec, folder: Path, pool: EnvPool) -> dict[str, dict[str, Any]]:
    """Every suite task's states from pi0's own rollouts (the KL seeds, disjoint from the scored seeds),
    collected once per results folder: the new task's carry RL's Razor's predictor, the prior tasks'
    test whether drift on old-task states predicts forgetting better."""
    caches = {}
    for task in suite.tasks:
        name = "kl_states.npz" if task == suite.new_task else f"kl_states_{task}.npz"
        path = folder / name
        if path.is_file():
            caches[task] = load_kl_states(path)
            continue
        caches[task] = collect_kl_states(
            pi0,
            pool,
            {"task": task, **policy_env_kwargs(pi0)},
            suite.kl_seeds,
            max_states=suite.kl_states,
        )
        save_kl_states(path, caches[task])
    return caches
