"""The env worker process: keeps every env it has built, keyed by its env kwargs, and runs batches of
env operations sent by the pool.

Operations (the dataclasses of :mod:`.messages`, answered in order, one reply per batch):
- :class:`Reset` -> :class:`Started`: bind a slot to an env of its key (reused if one is free, built
  otherwise) and start a seeded episode;
- :class:`Step` -> :class:`Stepped`;
- :class:`AutoStep` -> :class:`Stepped` with gymnasium's same-step autoreset: an episode that ends is reset
  (unseeded) at once, its last observation and info go into ``info["final_obs"]`` / ``info["final_info"]``
  (the training vector env);
- :class:`Call` -> ``fn(env, *args)``: a whole function on a free env of its key (e.g. a scripted-expert
  episode, which needs no policy);
- :class:`Stats` -> :class:`WorkerStats`.

A reply is :class:`Done` (the batch's results) or :class:`Failed` (an operation raised).
``frame`` asks for the env's video frame (``render_frame()``: the render camera, None without one).
Envs are reused across checkpoints, tasks and seeds: a seeded reset starts the same episode whatever the
env did before (tests/envs check this), so reuse changes no result and saves every rebuild.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from vla_razor.rollouts.messages import (
    AutoStep,
    Call,
    Done,
    Failed,
    Op,
    Reply,
    Reset,
    Started,
    Stats,
    Step,
    Stepped,
    WorkerStats,
)

EnvFactory = Callable[..., Any]


@dataclass(frozen=True)
class RobosuiteEnvFactory:
    """The default env factory: a vla-razor task env (robosuite is imported in the worker only).

    It carries the tasks defined in config files at run time (``define:`` blocks): they exist only in
    the parent's registry, so each worker registers them before building an env (idempotent).
    """

    task_specs: tuple[Any, ...] = ()

    def __call__(self, **kwargs: Any) -> Any:
        from vla_razor import envs

        for spec in self.task_specs:
            envs.register_task(spec)
        return envs.make_env(**kwargs)


def make_robosuite_env(**kwargs: Any) -> Any:
    """A vla-razor task env of a built-in task (see :class:`RobosuiteEnvFactory` for config tasks)."""
    return RobosuiteEnvFactory()(**kwargs)


class EnvCache:
    """Envs of one worker: a free list per env key, and the env each slot is playing on.

    At most ``limit`` envs stay built: when releasing one would leave more, the least recently released
    idle envs are closed (a seeded reset starts the same episode on a fresh env, so this costs only the
    rebuild)."""

    def __init__(self, factory: EnvFactory, limit: int | None = None) -> None:
        self.factory = factory
        self.limit = limit
        self.free: dict[str, list[Any]] = {}
        self.idle_order: deque[tuple[str, Any]] = deque()  # idle envs, least recently released first
        self.bound: dict[Hashable, tuple[str, Any]] = {}
        self.built = 0
        self.closed = 0

    @property
    def size(self) -> int:
        return len(self.bound) + sum(len(envs) for envs in self.free.values())

    def acquire(self, key: str, kwargs: dict[str, Any]) -> Any:
        free = self.free.setdefault(key, [])
        if free:
            env = free.pop()
            self.idle_order.remove((key, env))
            return env
        self._evict(room_for=1)
        self.built += 1
        return self.factory(**kwargs)

    def release(self, key: str, env: Any) -> None:
        self.free.setdefault(key, []).append(env)
        self.idle_order.append((key, env))
        self._evict(room_for=0)

    def _evict(self, room_for: int) -> None:
        while self.limit is not None and self.size + room_for > self.limit and self.idle_order:
            key, env = self.idle_order.popleft()
            self.free[key].remove(env)
            self.closed += 1
            with contextlib.suppress(Exception):
                env.close()

    def bind(self, slot: Hashable, key: str, kwargs: dict[str, Any]) -> Any:
        current = self.bound.pop(slot, None)
        if current is not None:
            if current[0] == key:
                self.bound[slot] = current
                return current[1]
            self.release(*current)
        env = self.acquire(key, kwargs)
        self.bound[slot] = (key, env)
        return env

    def close(self) -> None:
        for key, env in self.bound.values():
            self.release(key, env)
        self.bound.clear()
        self.idle_order.clear()
        for envs in self.free.values():
            for env in envs:
                with contextlib.suppress(Exception):
                    env.close()
        self.free.clear()


def _frame(env: Any, wanted: bool) -> Any:
    if not wanted:
        return None
    render = getattr(env.unwrapped, "render_frame", None)
    return render() if render is not None else None


def _run(cache: EnvCache, op: Op) -> Any:
    if isinstance(op, Step):
        env = cache.bound[op.slot][1]
        obs, reward, terminated, truncated, info = env.step(op.action)
        return Stepped(obs, float(reward), bool(terminated), bool(truncated), info, _frame(env, op.frame))
    if isinstance(op, AutoStep):
        env = cache.bound[op.slot][1]
        obs, reward, terminated, truncated, info = env.step(op.action)
        if terminated or truncated:
            final_obs, final_info = obs, info
            obs, info = env.reset()
            info = {**info, "final_obs": final_obs, "final_info": final_info}
        return Stepped(obs, float(reward), bool(terminated), bool(truncated), info)
    if isinstance(op, Reset):
        env = cache.bind(op.slot, op.key, op.kwargs)
        obs, _ = env.reset(seed=op.seed)
        return Started(obs, _frame(env, op.frame))
    if isinstance(op, Call):
        env = cache.acquire(op.key, op.kwargs)
        try:
            return op.fn(env, *op.args)
        finally:
            cache.release(op.key, env)
    if isinstance(op, Stats):
        return WorkerStats(pid=os.getpid(), built=cache.built)
    valid = ", ".join(kind.__name__ for kind in (Reset, Step, AutoStep, Call, Stats))
    raise ValueError(f"unknown env operation {op!r}; valid: {valid}")


def _exit_with(owner: int) -> None:
    """End this worker as soon as the process that owns the pool is gone.

    A worker is a child of the forkserver, not of the pool's owner, so nothing tells it when the owner is
    killed (SIGKILL, SIGTERM, the OOM killer) while it builds an env or steps a long batch; without this it
    would finish that work first, and an orphan would outlive the command by that long.
    """
    while True:
        time.sleep(0.5)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid now belongs to someone else's process: ours is gone
            os._exit(0)


def worker_main(
    conn: Connection, factory: EnvFactory, env_vars: dict[str, str], owner: int, env_limit: int | None = None
) -> None:
    """Serve batches of operations until the pool sends ``None`` or goes away."""
    # Ctrl-C reaches every process of the terminal's process group, and a scheduler's preemption signal
    # every process of the job (SLURM signals them all); the parent alone decides how the pool stops (it
    # closes or kills its workers), so a worker never dies half-way through a reply, and an update in
    # progress when a preemption arrives is not finished with dead workers' episodes counted as failures.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(owner,), daemon=True, name="owner-watch").start()
    # Before the first GL context exists: Mesa reads its thread count when it starts.
    os.environ.update(env_vars)
    cache = EnvCache(factory, env_limit)
    try:
        while True:
            try:
                ops = conn.recv()
            except (EOFError, OSError):  # the parent is gone: nothing left to serve
                return
            if ops is None:
                return
            try:
                reply: Reply = Done([_run(cache, op) for op in ops])
            except Exception as exc:  # reported to the parent, which decides; the worker stays usable
                reply = Failed(type(exc).__name__, str(exc), traceback.format_exc())
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return
    finally:
        cache.close()
