"""How the rollout engine uses the machine: worker processes, env slots, pipelining and threads.

Defaults follow the CPUs this process may run on (``os.sched_getaffinity``), not the machine's total:
a container or ``taskset`` limit is what the workers actually get.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch

from vla_razor.errors import BadInputError


def available_cores() -> int:
    """CPUs this process may run on (affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # platforms without sched_getaffinity
        return max(1, os.cpu_count() or 1)


@contextmanager
def policy_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` while the policy decodes next to the env workers,
    restored afterwards (a learner update may use every core). None leaves them alone."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class EngineSettings:
    """Resources of one rollout engine; ``None`` fields take the machine-derived default."""

    # Env worker processes (each builds the envs it is asked for once and keeps them); default: one per CPU.
    num_workers: int | None = None
    # Env slots (episodes in flight) per worker; the policy's batch is num_workers * slots / groups.
    slots_per_worker: int = 4
    # Groups of env slots decoded in turn (Sample Factory's worker_num_splits): 1: off (lock-step); 2: double
    # buffering (while the policy decodes for one group, the other steps); N > 2: the other N-1 groups step
    # meanwhile (pays when one decode takes longer than one step). Each worker's slots take the groups in
    # turn, so the policy's batch is about num_workers * slots_per_worker / groups (training: num_envs / groups).
    groups: int = 2
    # torch intra-op threads while the policy decodes next to the workers (rollouts only: a learner update
    # keeps the process's own setting); default: the CPUs the workers leave free, at least 1 (OpenMP
    # threads that spin next to busy workers cost more than they give: 10x slower decodes measured on 2 CPUs).
    torch_threads: int | None = None
    # Mesa llvmpipe render threads per worker (LP_NUM_THREADS); default: the CPUs per worker, at least 1.
    render_threads: int | None = None
    # Seconds a worker may take to answer one batch of env operations before it counts as hung and is
    # replaced (a stuck simulator must not stall the command).
    worker_timeout: float = 600.0
    # Envs a worker keeps built (busy plus idle); beyond it, the least recently used idle env is closed.
    # A robosuite env with cameras holds hundreds of MB resident (meshes and textures, a GL context; see
    # `benchmarks/env_throughput.py --memory`), and a long command asks for many kinds (each suite task, the
    # training env, demos): unbounded, a study's worker grew until the OOM killer took it. null: slots + 2.
    max_envs_per_worker: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_workers", "torch_threads", "render_threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise BadInputError(
                    f"engine.{name}={value!r} must be a positive integer or null (machine default)"
                )
        if not isinstance(self.slots_per_worker, int) or self.slots_per_worker < 1:
            raise BadInputError(
                f"engine.slots_per_worker={self.slots_per_worker!r} must be a positive integer"
            )
        if not isinstance(self.groups, int) or isinstance(self.groups, bool) or self.groups < 1:
            raise BadInputError(
                f"engine.groups={self.groups!r} must be a positive integer: 1 (no pipelining), "
                "2 (double buffering) or more"
            )
        if self.max_envs_per_worker is not None and (
            not isinstance(self.max_envs_per_worker, int)
            or isinstance(self.max_envs_per_worker, bool)
            or self.max_envs_per_worker < self.slots_per_worker
        ):
            raise BadInputError(
                f"engine.max_envs_per_worker={self.max_envs_per_worker!r} must be an integer >= "
                f"slots_per_worker ({self.slots_per_worker}), or null (slots_per_worker + 2)"
            )
        if not self.worker_timeout > 0:
            raise BadInputError(f"engine.worker_timeout={self.worker_timeout!r} must be > 0 seconds")

    @property
    def workers(self) -> int:
        return self.num_workers or available_cores()

    @property
    def threads(self) -> int:
        return self.torch_threads or max(1, available_cores() - self.workers)

    @property
    def env_limit(self) -> int:
        return self.max_envs_per_worker or self.slots_per_worker + 2

    @property
    def lp_threads(self) -> int:
        return self.render_threads or max(1, available_cores() // self.workers)

    @classmethod
    def from_mapping(cls, cfg: Any | None) -> EngineSettings:
        """From a config block (unknown keys are errors, naming the valid ones)."""
        if cfg is None:
            return cls()
        data = dict(cfg)
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise BadInputError(f"unknown engine setting(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**data)
