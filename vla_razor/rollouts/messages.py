"""The messages between the pool and its env workers: operations, their results, and the reply envelope.

Each is a small frozen dataclass, so a field is read by name on both sides of the pipe (a result read by
position would silently take ``truncated`` for ``terminated`` the day a field moves). Every class here is
picklable as it stands: the worker receives them through a ``multiprocessing`` pipe.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

# ---------------------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Reset:
    """Bind ``slot`` to an env of ``key`` (reused if one is free, built from ``kwargs`` otherwise) and
    start an episode seeded with ``seed`` (None: unseeded); answered by :class:`Started`."""

    slot: Hashable
    key: str
    kwargs: dict[str, Any]
    seed: int | None
    frame: bool = False  # send the env's video frame back (``render_frame()``; None without a camera)


@dataclass(frozen=True)
class Step:
    """One step of the env bound to ``slot`` (answered by :class:`Stepped`); an episode that ends stays
    ended until the engine resets its slot."""

    slot: Hashable
    action: Any
    frame: bool = False


@dataclass(frozen=True)
class AutoStep:
    """One step with gymnasium's same-step autoreset: an episode that ends is reset (unseeded) at once,
    its last observation and info go into ``info["final_obs"]`` / ``info["final_info"]`` (training)."""

    slot: Hashable
    action: Any


@dataclass(frozen=True)
class Call:
    """``fn(env, *args)`` on a free env of ``key``: a whole function, e.g. a scripted-expert episode."""

    key: str
    kwargs: dict[str, Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Stats:
    """What the worker has done so far (answered by :class:`WorkerStats`)."""


Op = Reset | Step | AutoStep | Call | Stats

# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Started:
    """The first observation of an episode started by :class:`Reset`."""

    obs: dict[str, Any]
    frame: Any = None


@dataclass(frozen=True)
class Stepped:
    """What :class:`Step` and :class:`AutoStep` return (``frame`` is None for an autostep)."""

    obs: dict[str, Any]
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    frame: Any = None


@dataclass(frozen=True)
class WorkerStats:
    pid: int
    built: int  # envs this worker has built since it started (reuse keeps this flat)


# -------------------------------------------------------------------------------------- the envelope


@dataclass(frozen=True)
class Done:
    """A whole batch answered: one result per operation, in order."""

    results: list[Any]


@dataclass(frozen=True)
class Failed:
    """An operation of the batch raised; the worker carries on. ``name`` is the exception's class."""

    name: str
    message: str
    traceback: str


Reply = Done | Failed


# ------------------------------------------------------------------------------------ the pool's tags


@dataclass(frozen=True)
class Sent:
    """What a batch sent to a worker was for (the pool hands it back with :meth:`EnvPool.pending`):
    the group of slots it belongs to and the slots its results are for, in order."""

    group: int | None  # None: every slot of the sender at once (a vector env's plain ``step``)
    slots: tuple[Hashable, ...]
