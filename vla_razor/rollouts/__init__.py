"""The rollout engine: the one place where environments meet policies.

- :mod:`.pool`: persistent env worker processes (forkserver), envs built once per worker and reused;
- :mod:`.messages`: the named operations and results that pass between the pool and its workers;
- :mod:`.splits`: double buffering, once: the split of env slots into groups and the loop that keeps
  every group in flight (any number of groups), shared by the engine and the collector;
- :mod:`.engine`: seeded episodes from a work queue, task-mixed policy batches, double buffering;
- :mod:`.collector`: on-policy training rollouts on any gymnasium-like vector env (double-buffered on
  :class:`~vla_razor.rollouts.vector.PoolVectorEnv`, the pool's training view);
- :mod:`.calls`: whole scripted episodes (experts) run inside the workers, results in order.
"""

from vla_razor.rollouts.collector import EpisodeStats, Rollout, RolloutCollector
from vla_razor.rollouts.engine import EngineStats, EpisodeJob, PlayedEpisode, SeededEpisode, play_episodes
from vla_razor.rollouts.observations import evaluate_under_profile, policy_batch, policy_env_kwargs
from vla_razor.rollouts.pool import EnvPool, WorkerDied, WorkerError
from vla_razor.rollouts.settings import EngineSettings, available_cores
from vla_razor.rollouts.vector import PoolVectorEnv

__all__ = [
    "EngineSettings",
    "EngineStats",
    "EnvPool",
    "EpisodeJob",
    "EpisodeStats",
    "PlayedEpisode",
    "PoolVectorEnv",
    "Rollout",
    "RolloutCollector",
    "SeededEpisode",
    "WorkerDied",
    "WorkerError",
    "available_cores",
    "evaluate_under_profile",
    "play_episodes",
    "policy_batch",
    "policy_env_kwargs",
]
