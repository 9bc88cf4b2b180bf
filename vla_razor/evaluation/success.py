"""Task success of a policy over fixed, held-out seeds, with the standard error.

The one success evaluation every caller uses (the held-out suite, pi0's table after pretraining, the
in-training evaluation): all tasks' episodes go into one work queue of the rollout engine, so a policy
batch mixes tasks and no env is built twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from vla_razor.errors import BadInputError
from vla_razor.rollouts import EnvPool, EpisodeJob, SeededEpisode, play_episodes
from vla_razor.sampling import GREEDY, Sampling
from vla_razor.seeds import HELDOUT_SEED_START


@dataclass
class SuccessResult:
    task: str
    episodes: list[SeededEpisode] = field(default_factory=list)
    # Video frames of the recorded episodes of this call, by seed (not part of the results document).
    frames: dict[int, list[np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.episodes)

    @property
    def success_rate(self) -> float:
        return sum(e.success for e in self.episodes) / self.n if self.n else float("nan")

    @property
    def sem(self) -> float:
        """Standard error of the success rate (binomial, with the unbiased variance)."""
        if self.n < 2:
            return float("nan")
        p = self.success_rate
        return math.sqrt(p * (1 - p) / (self.n - 1)) if 0 < p < 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n": self.n,
            "success_rate": self.success_rate,
            "sem": self.sem,
            "sim_errors": sum(1 for e in self.episodes if e.sim_error),
            "episodes": [asdict(e) for e in self.episodes],
        }


def evaluate_success(
    policy: Any,
    pool: EnvPool,
    tasks: Sequence[str],
    env_kwargs: Mapping[str, Any],
    seeds: Sequence[int],
    *,
    done: Mapping[str, Mapping[int, SeededEpisode]] | None = None,
    on_episode: Callable[[str, SeededEpisode], None] | None = None,
    record: int = 0,
    progress: bool | str = True,
    sampling: Sampling = GREEDY,
) -> dict[str, SuccessResult]:
    """One episode per (task, seed) with ``env_kwargs`` (cameras, image size, ...); results in seed
    order. Success is measured with greedy actions by default: no sampling seed to fix, one outcome per
    seed. ``sampling`` changes that (``benchmarks/sampled_success.py`` compares the two).

    ``done`` holds episodes already played (a resumed evaluation): they are not played again.
    ``on_episode(task, episode)`` runs as each new episode finishes. The first ``record`` seeds of every
    task keep their video frames (``SuccessResult.frames``).
    """
    if not seeds:
        raise BadInputError("evaluation needs at least one seed (episodes must be > 0)")
    if not tasks:
        raise BadInputError("evaluation needs at least one task")
    done = done or {}
    # Seed-major, task-minor: every batch mixes tasks, and a worker rarely needs two envs of one task.
    jobs = [
        EpisodeJob({"task": task, **env_kwargs}, int(seed), record=i < record)
        for i, seed in enumerate(seeds)
        for task in tasks
        if int(seed) not in done.get(task, {})
    ]
    total = len(seeds) * len(tasks)
    label = progress if isinstance(progress, str) else "eval"
    bar = tqdm(
        total=total, initial=total - len(jobs), desc=label, unit="ep", disable=not progress, leave=False
    )
    try:
        played = play_episodes(
            policy,
            pool,
            jobs,
            sampling=sampling,
            on_episode=None if on_episode is None else (lambda job, ep: on_episode(job.task, ep)),
            progress=bar,
        )
    finally:
        bar.close()
    results = {task: SuccessResult(task) for task in tasks}
    episodes: dict[str, dict[int, SeededEpisode]] = {task: dict(done.get(task, {})) for task in tasks}
    for p in played:
        episodes[p.job.task][p.job.seed] = p.episode
        if p.job.record:
            results[p.job.task].frames[p.job.seed] = p.frames
    for task in tasks:
        results[task].episodes = [episodes[task][int(s)] for s in seeds]
    return results


def heldout_seeds(n: int, start: int = HELDOUT_SEED_START) -> list[int]:
    if n <= 0:
        raise BadInputError(f"number of evaluation episodes must be > 0, got {n}")
    return list(range(start, start + n))
