"""Whole episodes that need no policy (the scripted experts), run inside the pool's workers.

``fn(env, *job)`` runs on a worker's env of ``env_kwargs`` (built once per worker and reused); results
come back in job order while the workers run ahead. This is how ``vla-razor demos`` and expert videos use
the same workers, and the same envs, as every other rollout of a command.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from vla_razor.rollouts.messages import Call
from vla_razor.rollouts.pool import EnvPool, WorkerDied, env_key

R = TypeVar("R")


def imap_on_envs(
    pool: EnvPool,
    env_kwargs: Mapping[str, Any],
    fn: Callable[..., R],
    jobs: Sequence[tuple[Any, ...]],
    on_died: Callable[[tuple[Any, ...], str], R],
) -> Iterator[R]:
    """Yield ``fn(env, *job)`` for every job, in order; a job whose worker died yields ``on_died(job, why)``.

    ``fn`` must be importable by the workers (a module-level function). Each worker holds one job at a
    time, so a caller that stops early (enough demos) waits for at most one episode per worker.
    """
    kwargs = dict(env_kwargs)
    key = env_key(kwargs)
    done: dict[int, R] = {}
    queue = deque(range(len(jobs)))
    running: dict[int, int] = {}  # worker -> job index
    emitted = 0

    def feed(worker: int) -> None:
        if queue:
            index = queue.popleft()
            try:
                pool.send(worker, [Call(key, kwargs, fn, tuple(jobs[index]))])
            except WorkerDied as died:
                done[index] = on_died(jobs[index], died.reason)
                feed(worker)
                return
            running[worker] = index

    try:
        for worker in range(pool.num_workers):
            feed(worker)
        while emitted < len(jobs):
            while emitted in done:
                result = done.pop(emitted)
                emitted += 1
                yield result
            if emitted >= len(jobs):
                break
            # Whichever workers finished: each takes the next job at once, results wait here in order.
            for worker in pool.ready(list(running)):
                index = running.pop(worker)
                try:
                    done[index] = pool.receive(worker)[0]
                except WorkerDied as died:
                    done[index] = on_died(jobs[index], died.reason)
                feed(worker)
    finally:
        for worker in running:  # a caller that stopped early: collect what the workers are still doing
            try:
                pool.receive(worker)
            except Exception:  # noqa: BLE001 (already abandoned; only the pool's state matters)
                continue
