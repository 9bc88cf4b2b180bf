"""Each method's new-task learning curve, pooled over its seeds: success at each checkpoint step.

A method's best single checkpoint can be one lucky seed (BC's 56% is one of three). Pooling the runs'
episodes at each step gives k/n with a Wilson interval, and the first-vs-last comparison says whether
training kept improving the new task or lost it. The pooled interval treats every episode as independent,
so it leaves out the spread between seeds: each step also lists the runs' own rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.stats import norm

from vla_razor.evaluation.stats import ProportionInterval, wilson_interval


@dataclass(frozen=True)
class CurveStep:
    step: int
    success: ProportionInterval  # pooled over the runs: k/n with its Wilson interval
    per_run: dict[str, float]  # run -> its own success rate at this step


@dataclass(frozen=True)
class TwoProportionTest:
    """Difference of two success rates (a - b) and the pooled two-proportion z test (two-sided p)."""

    difference: float
    z: float
    p: float


def two_proportion_test(k_a: int, n_a: int, k_b: int, n_b: int) -> TwoProportionTest:
    """z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)) with p the pooled rate; NaN z if p is 0 or 1."""
    if min(n_a, n_b) <= 0:
        raise ValueError(f"two proportions need n > 0, got {n_a} and {n_b}")
    pa, pb = k_a / n_a, k_b / n_b
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0.0:
        return TwoProportionTest(pa - pb, float("nan"), float("nan"))
    z = (pa - pb) / se
    return TwoProportionTest(pa - pb, z, float(2 * norm.sf(abs(z))))


@dataclass(frozen=True)
class LearningCurve:
    method: str
    steps: tuple[CurveStep, ...]  # ascending step

    def first_vs_last(self) -> TwoProportionTest | None:
        """The first checkpoint step against the last (None with fewer than 2 steps)."""
        if len(self.steps) < 2:
            return None
        a, b = self.steps[0].success, self.steps[-1].success
        return two_proportion_test(a.k, a.n, b.k, b.n)


def arm_labels(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each record's arm: its trainer, with its learning rate where the trainer ran at several (study 2's
    BC at 1e-5, 3e-5 and 1e-4 are three arms: pooling their seeds would mix three curves)."""
    lrs: dict[str, set[Any]] = {}
    for rec in records.values():
        lrs.setdefault(str(rec["trainer"]), set()).add(rec.get("lr"))
    return {
        pid: f"{rec['trainer']} lr {rec.get('lr')}"
        if len(lrs[str(rec["trainer"])]) > 1
        else str(rec["trainer"])
        for pid, rec in records.items()
    }


def learning_curves(document: dict[str, Any]) -> dict[str, LearningCurve]:
    """Per arm (the recorded trainer, and its learning rate where it ran at several), new-task success at
    each checkpoint step, pooled over its runs.

    Counts come from the recorded per-episode outcomes, so k/n is exact. pi0 and records without a step or
    a trainer are left out."""
    new_task = document["suite"]["new_task"]
    records = {
        pid: rec
        for pid, rec in document["policies"].items()
        if pid != "pi0" and rec.get("step") is not None and rec.get("trainer")
    }
    label = arm_labels(records)
    pooled: dict[str, dict[int, dict[str, list[int]]]] = {}
    for pid, rec in records.items():
        outcomes = [int(s) for s in rec["tasks"][new_task]["successes"]]
        run = pid.rsplit("/", 1)[0]
        pooled.setdefault(label[pid], {}).setdefault(int(rec["step"]), {})[run] = outcomes
    curves = {}
    for method, by_step in sorted(pooled.items()):
        steps = []
        for step, runs in sorted(by_step.items()):
            k = sum(sum(o) for o in runs.values())
            n = sum(len(o) for o in runs.values())
            per_run = {run: sum(o) / len(o) for run, o in sorted(runs.items())}
            steps.append(CurveStep(step, wilson_interval(k, n), per_run))
        curves[method] = LearningCurve(method, tuple(steps))
    return curves
