"""Seeded episodes of a batched policy on the env pool: one work queue, task-mixed batches, double buffering.

Every job is (env kwargs, seed). Env slots on the pool's workers take jobs from the queue in order; the
policy decodes one batch per group of slots, and a batch may mix tasks (the policy is multi-task and
conditions each row on its own instruction). With two or more groups the engine double-buffers, as
EnvPool and Sample Factory do (:mod:`.splits`, shared with training rollouts): while the policy decodes for
one group, the workers step the others, so neither the simulator nor the policy waits for the other.

Determinism: which slot plays which job, and which observations share a policy batch, depend only on the
job list and the episodes' own outcomes, never on timing (each group is sent and received as a whole, in
a fixed order). The same policy on the same jobs therefore plays exactly the same episodes, and results
come back per job, in job order.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vla_razor.rollouts.messages import Reset, Sent, Started, Step, Stepped
from vla_razor.rollouts.observations import copy_obs, policy_batch, stack_obs
from vla_razor.rollouts.pool import EnvPool, WorkerDied, WorkerError, env_key
from vla_razor.rollouts.settings import policy_threads
from vla_razor.rollouts.splits import keep_in_flight, split_slots
from vla_razor.sampling import GREEDY, Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpisodeJob:
    """One seeded episode: the env to play it in (``envs.make_env`` kwargs, task included) and its seed."""

    env_kwargs: Mapping[str, Any]
    seed: int
    record: bool = False  # keep a video frame of every step (the render camera, else the policy's camera)

    @property
    def task(self) -> str:
        return str(self.env_kwargs["task"])


@dataclass
class SeededEpisode:
    """What the results store keeps of an episode."""

    seed: int
    success: bool
    length: int
    sim_error: str | None = None


@dataclass
class PlayedEpisode:
    job: EpisodeJob
    episode: SeededEpisode
    frames: list[np.ndarray] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EngineStats:
    """Where the wall time of one :func:`play_episodes` call went."""

    episodes: int = 0
    steps: int = 0
    wall_seconds: float = 0.0
    policy_seconds: float = 0.0
    worker_failures: int = 0


class _Slot:
    """One env slot on a worker: the job it plays, its latest observation, and the next action."""

    def __init__(self, sid: int, worker: int, group: int) -> None:
        self.sid = sid
        self.worker = worker
        self.group = group
        self.job: int | None = None
        self.obs: dict[str, Any] | None = None
        self.action: np.ndarray | None = None
        self.needs_reset = False
        self.length = 0


def make_slots(num_workers: int, slots_per_worker: int, groups: int) -> list[_Slot]:
    """Slots worker by worker, each in the group the split rule gives it (:func:`.splits.split_slots`)."""
    places = split_slots([slots_per_worker] * num_workers, groups)
    return [_Slot(sid, place.worker, place.group) for sid, place in enumerate(places)]


class _Run:
    """The state of one :func:`play_episodes` call."""

    def __init__(
        self,
        policy: Any,
        pool: EnvPool,
        jobs: Sequence[EpisodeJob],
        sampling: Sampling,
        on_episode: Callable[[EpisodeJob, SeededEpisode], None] | None,
        keep_observations: bool,
        progress: Any,
    ) -> None:
        self.policy = policy
        self.pool = pool
        self.jobs = list(jobs)
        self.keys = [env_key(dict(job.env_kwargs)) for job in self.jobs]
        self.sampling = sampling
        # Per-episode generators (``sampling.episode_seed``), by job; a replayed job starts its stream again.
        self.generators: dict[int, torch.Generator | None] = {}
        self.on_episode = on_episode
        self.keep_observations = keep_observations
        self.progress = progress
        settings = pool.settings
        self.groups = settings.groups
        self.slots = make_slots(pool.num_workers, settings.slots_per_worker, self.groups)
        self.queue = deque(range(len(self.jobs)))
        self.played: dict[int, PlayedEpisode] = {}
        # Jobs in flight when their worker died (suspects): waiting to be played again, or being played.
        self.suspects: deque[int] = deque()
        self.suspected: set[int] = set()
        self.stats = EngineStats()

    # ------------------------------------------------------------------ jobs
    def assign(self, slot: _Slot) -> None:
        slot.job = self.next_job()
        slot.obs = slot.action = None
        slot.needs_reset = slot.job is not None
        slot.length = 0
        if slot.job is not None:
            job = self.jobs[slot.job]
            self.played[slot.job] = PlayedEpisode(job, SeededEpisode(job.seed, False, 0))
            self.generators[slot.job] = self.sampling.episode_generator(job.task, job.seed)

    def next_job(self) -> int | None:
        """The next job to play: a suspect (an episode in flight when its worker died) only while no other
        suspect is in flight, so that a second death can be blamed on exactly one episode."""
        if self.suspects and not any(s.job in self.suspected for s in self.slots if s.job is not None):
            return self.suspects.popleft()
        return self.queue.popleft() if self.queue else None

    def finish(self, slot: _Slot, success: bool, sim_error: str | None) -> None:
        self.finish_without_assign(slot, success, sim_error)
        self.assign(slot)

    def finish_without_assign(self, slot: _Slot, success: bool, sim_error: str | None) -> None:
        assert slot.job is not None
        played = self.played[slot.job]
        played.episode = SeededEpisode(played.job.seed, bool(success), slot.length, sim_error or None)
        self.stats.episodes += 1
        self.suspected.discard(slot.job)
        if sim_error:
            log.warning("%s seed %d: %s (counted as a failure)", played.job.task, played.job.seed, sim_error)
        if self.progress is not None:
            self.progress.update(1)
        if self.on_episode is not None:
            self.on_episode(played.job, played.episode)

    def busy(self) -> bool:
        return any(s.job is not None for s in self.slots) or any(
            self.pool.has_pending(w) for w in range(self.pool.num_workers)
        )

    # ------------------------------------------------------------------ messages
    def dispatch(self, group: int) -> None:
        """Send each worker its group's operations: steps for slots with an action, resets for new jobs."""
        for w in range(self.pool.num_workers):
            ops: list[Reset | Step] = []
            sids = []
            for slot in self.slots:
                if slot.worker != w or slot.group != group or slot.job is None:
                    continue
                job = self.jobs[slot.job]
                if slot.needs_reset:
                    key, kwargs = self.keys[slot.job], dict(job.env_kwargs)
                    ops.append(Reset(slot.sid, key, kwargs, seed=job.seed, frame=job.record))
                elif slot.action is not None:
                    ops.append(Step(slot.sid, slot.action, frame=job.record))
                    slot.action = None
                else:
                    continue
                sids.append(slot.sid)
            if ops:
                try:
                    self.pool.send(w, ops, tag=Sent(group, tuple(sids)))
                except WorkerDied as died:
                    self.lose_worker(w, died)

    def gather(self, group: int) -> None:
        """Receive the group's results from every worker that owes them, in worker order."""
        for w in range(self.pool.num_workers):
            tag = self.pool.pending(w)
            if not isinstance(tag, Sent) or tag.group != group:
                continue
            try:
                results = self.pool.receive(w)
            except WorkerDied as died:
                self.lose_worker(w, died)
                continue
            for sid, result in zip(tag.slots, results, strict=True):
                self.apply(self.slots[sid], result)

    def apply(self, slot: _Slot, result: Started | Stepped) -> None:
        assert slot.job is not None
        played = self.played[slot.job]
        if isinstance(result, Stepped):
            slot.length += 1
            self.stats.steps += 1
        else:
            slot.needs_reset = False
        if played.job.record:
            frame = result.frame if result.frame is not None else _camera(result.obs)
            played.frames.append(np.asarray(frame).copy())
        if isinstance(result, Stepped) and (result.terminated or result.truncated):
            self.finish(slot, bool(result.info.get("is_success", False)), result.info.get("sim_error"))
        else:
            slot.obs = result.obs

    def lose_worker(self, worker: int, died: WorkerDied) -> None:
        """The episodes the dead worker was playing are played again from their seeds on its replacement
        (a killed process says nothing about the policy), one at a time among such suspects. A suspect
        whose worker dies again ends as a failure with ``sim_error``: a crash its own actions cause, as a
        simulator segfault would."""
        self.stats.worker_failures += 1
        lost = [slot for slot in self.slots if slot.worker == worker and slot.job is not None]
        for slot in lost:
            job = slot.job
            assert job is not None
            if job in self.suspected:  # a suspect, played among no other suspect: it killed the worker
                self.finish_without_assign(slot, False, f"env worker died: {died.reason}")
            else:
                self.suspected.add(job)
                self.suspects.append(job)
                log.warning(
                    "%s seed %d: env worker died (%s); the episode will be played again",
                    self.jobs[job].task,
                    self.jobs[job].seed,
                    died.reason,
                )
            slot.job = None
        for slot in lost:
            self.assign(slot)

    # ------------------------------------------------------------------ policy
    def decide(self, group: int) -> None:
        ready = [s for s in self.slots if s.group == group and s.job is not None and s.obs is not None]
        if not ready:
            return
        if self.keep_observations:
            for s in ready:
                assert s.job is not None
                self.played[s.job].observations.append(copy_obs(s.obs))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        batch = policy_batch(self.policy, stack_obs([s.obs for s in ready]))  # type: ignore[misc]
        rows = None if self.sampling.episode_seed is None else [self.generators[s.job] for s in ready]  # type: ignore[index]
        out = self.sampling.act(self.policy, batch, rows)
        self.stats.policy_seconds += time.perf_counter() - t0
        actions = np.asarray(out.actions, dtype=np.float32)
        for s, action in zip(ready, actions, strict=True):
            s.action = action
            s.obs = None

    def launch(self, group: int) -> None:
        self.decide(group)
        self.dispatch(group)

    def run(self) -> list[PlayedEpisode]:
        start = time.perf_counter()
        for slot in self.slots:
            self.assign(slot)
        try:
            # Before any result, no slot has an observation: the first launches only send resets.
            keep_in_flight(self.groups, self.launch, self.gather, self.busy)
        except Exception:
            self.drain()
            raise
        self.stats.wall_seconds = time.perf_counter() - start
        return [self.played[i] for i in range(len(self.jobs))]

    def drain(self) -> None:
        """Collect (and drop) every outstanding reply, so the pool is usable after a failed call."""
        for w in range(self.pool.num_workers):
            while self.pool.has_pending(w):
                try:
                    self.pool.receive(w)
                except (WorkerDied, WorkerError, ValueError):
                    continue


def _camera(obs: dict[str, Any]) -> np.ndarray:
    for key, value in obs.items():
        if key.endswith("_image"):
            return np.asarray(value)
    raise ValueError("no camera image in the observation and no render camera configured; enable a camera")


@torch.no_grad()
def play_episodes(
    policy: Any,
    pool: EnvPool,
    jobs: Sequence[EpisodeJob],
    *,
    sampling: Sampling = GREEDY,
    on_episode: Callable[[EpisodeJob, SeededEpisode], None] | None = None,
    keep_observations: bool = False,
    progress: Any = None,
    stats: EngineStats | None = None,
) -> list[PlayedEpisode]:
    """Play every job once with ``policy`` (in eval mode); returns the episodes in job order.

    The policy acts as ``sampling`` says (greedy by default). ``on_episode`` is called as each episode finishes (append-only result files). With
    ``keep_observations`` every observation the policy saw is kept with its episode (e.g. the new-task
    states of KL measurements). An episode whose worker died is played again from its seed, among no other
    such episode; if its worker dies again, it ends as a failure with ``sim_error`` set.
    """
    if not jobs:
        return []
    was_training = policy.training
    policy.eval()
    try:
        run = _Run(policy, pool, jobs, sampling, on_episode, keep_observations, progress)
        with policy_threads(pool.settings.threads):
            played = run.run()
    finally:
        policy.train(was_training)
    if stats is not None:
        for name in ("episodes", "steps", "wall_seconds", "policy_seconds", "worker_failures"):
            setattr(stats, name, getattr(stats, name) + getattr(run.stats, name))
    return played
