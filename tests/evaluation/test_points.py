import math

from vla_razor.evaluation.points import method_points, pi0_anchor, pi0_floor, pi0_point


def _point(method: str, run: str, new: float, prior: float) -> dict:
    return {"method": method, "run": run, "new_task_success": new, "prior_success": prior}


POINTS = [
    _point("pi0", "pi0", 0.5, 0.9),
    _point("bc", "bc_s0", 0.6, 0.4),
    _point("ppo", "ppo_s0", 0.7, 0.85),
    _point("bc", "bc_s1", 0.8, 0.2),
]


def test_method_points_are_columns_in_order():
    assert method_points(POINTS, "bc") == ([0.6, 0.8], [0.4, 0.2], ["bc_s0", "bc_s1"])
    assert method_points(POINTS, "rft") == ([], [], [])


def test_pi0_lookups():
    assert pi0_point(POINTS)["run"] == "pi0"
    assert pi0_anchor(POINTS) == (0.5, 0.9)
    assert pi0_floor(POINTS) == 0.5


def test_without_pi0_every_level_counts():
    rest = POINTS[1:]
    assert pi0_point(rest) is None and pi0_anchor(rest) is None
    assert pi0_floor(rest) == -math.inf
