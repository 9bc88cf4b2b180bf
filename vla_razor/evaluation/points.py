"""Lookups on a study's points (one dict per evaluated checkpoint plus one for pi0, built by
``study.study_points``) that the report's frontier comparisons share.

Kept apart from ``study`` so that the sections ``study`` assembles (``mechanism``) and the checks built on
the report (``claim_checks``) can use them without importing each other.
"""

from __future__ import annotations

import math
from typing import Any

Points = list[dict[str, Any]]
PI0 = "pi0"  # the method name of the base policy's point


def pi0_point(points: Points) -> dict[str, Any] | None:
    """pi0's point, or None for a study that has none."""
    return next((p for p in points if p["method"] == PI0), None)


def pi0_anchor(points: Points) -> tuple[float, float] | None:
    """pi0's (new-task success, prior-skill success): where every method's frontier starts, reached with no
    training; None without a pi0 point."""
    base = pi0_point(points)
    return None if base is None else (base["new_task_success"], base["prior_success"])


def pi0_floor(points: Points) -> float:
    """pi0's new-task success, the level a fine-tune has to beat; -inf without a pi0 point, so that every
    level counts."""
    base = pi0_point(points)
    return base["new_task_success"] if base is not None else -math.inf


def method_points(points: Points, method: str) -> tuple[list[float], list[float], list[str]]:
    """One method's checkpoints as (new-task success, prior-skill success, run) columns."""
    pts = [p for p in points if p["method"] == method]
    return [p["new_task_success"] for p in pts], [p["prior_success"] for p in pts], [p["run"] for p in pts]
