"""Task success of a policy over fixed, held-out seeds, with the standard error."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from vla_razor.errors import BadInputError
from vla_razor.sampling import seeded_generator
from vla_razor.trainers.rollout import SeededEpisode, evaluate_seeds

HELDOUT_SEED_START = 100_000


@dataclass
class SuccessResult:
    task: str
    episodes: list[SeededEpisode] = field(default_factory=list)

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
    env_kwargs: dict[str, Any],
    seeds: list[int],
    *,
    num_envs: int = 2,
    greedy: bool = True,
    temperature: float = 1.0,
    sample_seed: int = 0,
    progress: bool = True,
) -> SuccessResult:
    """Play one episode per seed of ``env_kwargs['task']`` in parallel env processes."""
    from gymnasium.vector import AutoresetMode

    from vla_razor import envs

    kwargs = dict(env_kwargs)
    task = kwargs.pop("task")
    if not seeds:
        raise BadInputError("evaluation needs at least one seed (episodes must be > 0)")
    venv = envs.make_vector_env(
        task,
        max(1, min(num_envs, len(seeds))),
        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        **kwargs,
    )
    bar = tqdm(total=len(seeds), desc=f"eval {task}", unit="ep", disable=not progress, leave=False)
    was_training = policy.training
    policy.eval()
    try:
        episodes, _ = evaluate_seeds(
            policy,
            venv,
            seeds,
            greedy=greedy,
            temperature=temperature,
            generator=seeded_generator(sample_seed, policy.device),
            progress=bar,
        )
    finally:
        policy.train(was_training)
        bar.close()
        venv.close()
    return SuccessResult(task, episodes)


def heldout_seeds(n: int, start: int = HELDOUT_SEED_START) -> list[int]:
    if n <= 0:
        raise BadInputError(f"number of evaluation episodes must be > 0, got {n}")
    return list(range(start, start + n))
