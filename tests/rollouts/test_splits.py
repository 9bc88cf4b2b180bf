"""The one split rule and the one in-flight loop that evaluation episodes and training rollouts share."""

from __future__ import annotations

from vla_razor.rollouts.splits import keep_in_flight, split_envs, split_slots


def test_each_workers_slots_take_the_groups_in_turn() -> None:
    places = split_slots([3, 3], 3)
    assert [(p.worker, p.group) for p in places] == [(w, g) for w in range(2) for g in (0, 1, 2)]
    # Fewer slots than groups on a worker: the workers themselves form the groups.
    assert [p.group for p in split_slots([1, 1, 1], 2)] == [0, 1, 0]


def test_a_vector_envs_groups_are_ranges_spread_over_every_worker() -> None:
    assert split_envs(4, 2, 2) == ([[0, 1], [2, 3]], [0, 1, 0, 1])
    assert split_envs(7, 2, 3) == ([[0, 1, 2], [3, 4], [5, 6]], [0, 1, 0, 0, 1, 0, 1])
    # Too few envs for every group to keep every worker busy: one group.
    assert split_envs(2, 2, 2) == ([[0, 1]], [0, 1])
    assert split_envs(5, 2, 3) == ([[0, 1, 2, 3, 4]], [0, 1, 0, 1, 0])


def test_every_group_is_in_flight_and_taken_in_a_fixed_order() -> None:
    for groups, expected in [
        (1, "L0 W0 L0 W0 L0"),
        (2, "L0 L1 W0 L0 W1 L1 W0 L0 W1 L1"),
        (3, "L0 L1 L2 W0 L0 W1 L1 W2 L2 W0 L0 W1 L1 W2 L2"),
    ]:
        calls: list[str] = []
        rounds = iter(range(3))
        keep_in_flight(
            groups,
            lambda g, calls=calls: calls.append(f"L{g}"),
            lambda g, calls=calls: calls.append(f"W{g}"),
            lambda rounds=rounds: next(rounds) < 2,
        )
        assert " ".join(calls) == expected, groups
