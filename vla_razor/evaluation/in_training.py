"""In-training evaluation: every N updates, new-task success on fixed held-out seeds (greedy actions, or
sampled per episode as the suite can: ``eval.decode``) and the divergence of the current policy from pi0 on a cached set of new-task states.

Results are logged and written beside the checkpoints (``<run>/eval/step_<N>.json``): the raw material
of the forgetting-vs-KL study. The trainers receive this object as a plain ``(policy, step) -> metrics``
callable (they never import evaluation); the training workflow wires it, with the env pool it shares.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vla_razor.errors import BadInputError
from vla_razor.evaluation.divergences import measure_divergences
from vla_razor.evaluation.kl_states import collect_kl_states, load_kl_states, save_kl_states
from vla_razor.evaluation.success import evaluate_success
from vla_razor.evaluation.suite_spec import DECODE_MODES
from vla_razor.io_utils import write_json_atomic
from vla_razor.rollouts import EnvPool
from vla_razor.sampling import GREEDY, Sampling

log = logging.getLogger(__name__)


class StepLogger(Protocol):
    def log(self, step: int, metrics: dict[str, float], *, prefix: str = "") -> None: ...


class InTrainingEvaluator:
    def __init__(
        self,
        run_dir: str | Path,
        env_kwargs: dict[str, Any],
        pool: EnvPool,
        *,
        episodes: int,
        seed: int,
        kl_states: int = 256,
        kl_state_seeds: int = 8,
        logger: StepLogger | None = None,
        enabled: bool = True,
        decode: str = "greedy",
        temperature: float = 1.0,
    ) -> None:
        if episodes <= 0:
            raise BadInputError(f"eval.episodes must be > 0, got {episodes}")
        if decode not in DECODE_MODES:
            raise BadInputError(f"eval.decode={decode!r} is not one of {', '.join(DECODE_MODES)}")
        self.sampling = (
            GREEDY
            if decode == "greedy"
            else Sampling(greedy=False, temperature=temperature, episode_seed=seed)
        )
        self.run_dir = Path(run_dir)
        self.env_kwargs = dict(env_kwargs)
        self.task = str(self.env_kwargs.pop("task"))
        self.pool = pool
        self.seeds = [seed + i for i in range(episodes)]
        # KL states come from seeds after the success seeds, so the two never share an episode.
        self.kl_seeds = [seed + episodes + i for i in range(kl_state_seeds)]
        self.kl_states = kl_states
        self.logger = logger
        self.enabled = enabled
        self._states: dict[str, Any] | None = None

    def states(self, policy: Any) -> dict[str, Any]:
        """The cached new-task states (collected from pi0 on first use, reused on resume)."""
        if self._states is None:
            cache = self.run_dir / "kl_states.npz"
            if cache.is_file():
                self._states = load_kl_states(cache)
            else:
                self._states = collect_kl_states(
                    policy,
                    self.pool,
                    {"task": self.task, **self.env_kwargs},
                    self.kl_seeds,
                    max_states=self.kl_states,
                )
                if self.enabled:
                    save_kl_states(cache, self._states)
        return self._states

    def __call__(self, policy: Any, step: int) -> dict[str, float]:
        was_training = policy.training
        policy.eval()
        try:
            success = evaluate_success(
                policy,
                self.pool,
                [self.task],
                self.env_kwargs,
                self.seeds,
                progress=False,
                sampling=self.sampling,
            )[self.task]
            successes = np.array([e.success for e in success.episodes], dtype=float)
            result = {
                "new_task_success": float(successes.mean()),
                "new_task_success_sem": float(successes.std(ddof=1) / np.sqrt(len(successes)))
                if len(successes) > 1
                else 0.0,
                "episodes": float(len(successes)),
            }
            if self.kl_states:
                states = self.states(policy)
                result["kl_states"] = float(len(states["instructions"]))
                # pi0 is the policy's own reference (adapters off, or its frozen copy).
                result.update(measure_divergences(policy, policy, states))
        finally:
            policy.train(was_training)
        if self.enabled:
            write_json_atomic(
                self.run_dir / "eval" / f"step_{step:06d}.json", {"step": step, "seeds": self.seeds, **result}
            )
            if self.logger is not None:
                self.logger.log(step, result, prefix="eval/")
        return {f"eval_{k}": v for k, v in result.items()}
