"""Double buffering, written once: how env slots split into groups, and the loop that keeps them in flight.

Sample Factory's ``worker_num_splits``: each worker's env slots are split into ``groups``; the policy
decodes for one group while the workers step the others, so neither the simulator nor the policy waits
for the other. One group is plain lock-step; two is double buffering; more keep more of the simulator busy
while one group decodes (worth it when decoding is slower than stepping).

Evaluation episodes (:mod:`.engine`) and training rollouts (:mod:`.collector` over :mod:`.vector`) both
place their slots with :func:`split_slots` and run them with :func:`keep_in_flight`, a fixed order of
sends and receives: which observations share a policy batch never depends on timing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """Where one env slot lives: the worker process that steps it and the group it is decoded with."""

    worker: int
    group: int


def split_slots(per_worker: Sequence[int], groups: int) -> list[Place]:
    """The place of every slot, worker by worker (``per_worker[w]`` slots on worker ``w``).

    A worker's slots take the groups in turn (slot ``i`` in group ``i % groups``), so every worker has work
    in every group and keeps stepping one while the policy decodes another. A worker with fewer slots than
    groups gives all of them to group ``worker % groups``: the workers themselves then form the groups.
    """
    if groups < 1:
        raise ValueError(f"groups={groups!r} must be >= 1")
    places = []
    for worker, count in enumerate(per_worker):
        for i in range(count):
            places.append(Place(worker, i % groups if count >= groups else worker % groups))
    return places


def spread(count: int, workers: int, groups: int) -> list[int]:
    """How many of ``count`` envs each worker holds when they form ``groups`` near-equal groups (the first
    ones one env larger) and each group is spread over the workers from worker 0."""
    shares = [count // groups + (g < count % groups) for g in range(groups)]
    return [sum(len(range(worker, share, workers)) for share in shares) for worker in range(workers)]


def split_envs(count: int, workers: int, groups: int) -> tuple[list[list[int]], list[int]]:
    """A vector env's ``count`` envs on ``workers`` workers: its groups (each a range of env indices, in
    order, so a time step of all envs is the groups' rows one after the other) and each env's worker.

    Splitting pays only if each group keeps every worker busy on its own: with fewer envs than that
    (2 envs on 2 workers) a split would leave a worker idle while another steps, so they form one group.
    """
    if count // groups < min(workers, count):
        groups = 1
    places = split_slots(spread(count, workers, groups), groups)
    # Env indices run group by group; within a group, the n-th slot of every worker in worker order.
    depth: dict[Place, int] = {}
    order = []
    for place in places:
        order.append((place.group, depth.get(place, 0), place.worker))
        depth[place] = depth.get(place, 0) + 1
    order.sort()
    members: list[list[int]] = [[] for _ in range(groups)]
    for index, (group, _depth, _worker) in enumerate(order):
        members[group].append(index)
    return members, [worker for _group, _depth, worker in order]


def keep_in_flight(
    groups: int, launch: Callable[[int], None], land: Callable[[int], None], more: Callable[[], bool]
) -> None:
    """Send every group's work, then, while ``more()``, take each group's results in turn and send its next
    work at once: the other groups step meanwhile.

    ``launch(g)`` decides and sends group ``g``'s work (nothing when it has none); ``land(g)`` receives and
    applies its results. The order of calls is fixed (L0 L1 .. | W0 L0 W1 L1 .. | ...), so everything
    decided from the results is a function of the work alone; with one group it is plain lock-step.
    """
    for group in range(groups):
        launch(group)
    while more():
        for group in range(groups):
            land(group)
            launch(group)
