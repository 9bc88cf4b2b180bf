"""A worker's env cache stays bounded: idle envs beyond the limit are closed, least recently used first."""

from __future__ import annotations

import pytest

from vla_razor.errors import BadInputError
from vla_razor.rollouts import EngineSettings
from vla_razor.rollouts.worker import EnvCache


class _Env:
    def __init__(self, task: str) -> None:
        self.task = task
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_idle_envs_beyond_the_limit_are_closed_least_recently_used_first() -> None:
    cache = EnvCache(lambda task: _Env(task), limit=3)
    envs = {t: cache.bind(slot, t, {"task": t}) for slot, t in enumerate(["lift", "door", "can"])}
    assert cache.size == 3 and cache.built == 3
    # Slot 0 moves to a fourth task: lift goes idle, and is the one closed to make room.
    bread = cache.bind(0, "bread", {"task": "bread"})
    assert envs["lift"].closed and cache.size == 3 and cache.closed == 1
    # Slot 1 moves to lift, which was closed: built afresh, and door (now the oldest idle env) is closed.
    cache.bind(1, "lift", {"task": "lift"})
    assert envs["door"].closed and not bread.closed and cache.size == 3
    # An idle env of the asked kind is reused, never rebuilt.
    cache.bind(2, "door", {"task": "door"})
    built = cache.built
    cache.bind(2, "can", {"task": "can"})
    assert cache.built == built + 1 and cache.size == 3
    cache.close()
    assert all(e.closed for e in (bread, envs["can"]))


def test_no_limit_keeps_every_env_and_bad_limits_are_one_line() -> None:
    cache = EnvCache(lambda task: _Env(task))
    for task in ["a", "b", "c", "d"]:
        cache.bind(0, task, {"task": task})
    assert cache.size == 4 and cache.closed == 0
    assert EngineSettings(slots_per_worker=3).env_limit == 5
    with pytest.raises(BadInputError, match="max_envs_per_worker=2 must be an integer >= slots_per_worker"):
        EngineSettings(slots_per_worker=4, max_envs_per_worker=2)
