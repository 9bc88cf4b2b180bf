"""In-training evaluation: every N updates, new-task success on fixed held-out seeds (greedy actions)
and the divergence of the current policy from pi0 on a cached set of new-task states.

Results are logged and written beside the checkpoints (``<run>/eval/step_<N>.json``): the raw material
of the forgetting-vs-KL study.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vla_razor.errors import BadInputError
from vla_razor.evaluation.kl_states import (
    collect_kl_states,
    load_kl_states,
    measure_divergences,
    save_kl_states,
)
from vla_razor.io_utils import write_json_atomic
from vla_razor.trainers.logger import MetricLogger

log = logging.getLogger(__name__)


class InTrainingEvaluator:
    def __init__(
        self,
        run_dir: str | Path,
        env_kwargs: dict[str, Any],
        *,
        episodes: int,
        seed: int,
        num_envs: int = 2,
        kl_states: int = 256,
        kl_state_seeds: int = 8,
        logger: MetricLogger | None = None,
        enabled: bool = True,
    ) -> None:
        if episodes <= 0:
            raise BadInputError(f"eval.episodes must be > 0, got {episodes}")
        self.run_dir = Path(run_dir)
        self.env_kwargs = dict(env_kwargs)
        self.seeds = [seed + i for i in range(episodes)]
        # KL states come from seeds after the success seeds, so the two never share an episode.
        self.kl_seeds = [seed + episodes + i for i in range(kl_state_seeds)]
        self.num_envs = num_envs
        self.kl_states = kl_states
        self.logger = logger
        self.enabled = enabled
        self._venv: Any = None
        self._states: dict[str, Any] | None = None

    def _env(self) -> Any:
        if self._venv is None:
            from gymnasium.vector import AutoresetMode

            from vla_razor import envs

            kwargs = dict(self.env_kwargs)
            task = kwargs.pop("task")
            self._venv = envs.make_vector_env(
                task,
                min(self.num_envs, len(self.seeds)),
                vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
                **kwargs,
            )
        return self._venv

    def states(self, policy: Any) -> dict[str, Any]:
        """The cached new-task states (collected from pi0 on first use, reused on resume)."""
        if self._states is None:
            cache = self.run_dir / "kl_states.npz"
            if cache.is_file():
                self._states = load_kl_states(cache)
            else:
                self._states = collect_kl_states(
                    policy, self.env_kwargs, self.kl_seeds, max_states=self.kl_states, num_envs=self.num_envs
                )
                if self.enabled:
                    save_kl_states(cache, self._states)
        return self._states

    def __call__(self, policy: Any, step: int) -> dict[str, float]:
        from vla_razor.trainers.rollout import evaluate_seeds

        was_training = policy.training
        policy.eval()
        try:
            episodes, _ = evaluate_seeds(policy, self._env(), self.seeds, greedy=True)
            successes = np.array([e.success for e in episodes], dtype=float)
            result = {
                "new_task_success": float(successes.mean()),
                "new_task_success_sem": float(successes.std(ddof=1) / np.sqrt(len(successes)))
                if len(successes) > 1
                else 0.0,
                "episodes": float(len(successes)),
            }
            if self.kl_states:
                result.update(measure_divergences(policy, self.states(policy)))
        finally:
            policy.train(was_training)
        if self.enabled:
            write_json_atomic(
                self.run_dir / "eval" / f"step_{step:06d}.json", {"step": step, "seeds": self.seeds, **result}
            )
            if self.logger is not None:
                self.logger.log(step, result, prefix="eval/")
        return {f"eval_{k}": v for k, v in result.items()}

    def close(self) -> None:
        if self._venv is not None:
            self._venv.close()
            self._venv = None
