"""Which learning rate of a trainer swept at several did best on the new task: study 2's rule for DAgger.

The rule is fixed before the data (``configs/study2.yaml``): per learning rate, each run's best new-task
success over its checkpoints, averaged over the runs (seeds). Taking each run's best, not one pooled step,
lets a fast rate that peaks early and a slow one that peaks late compete on what they reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LearningRateScore:
    lr: float
    mean_best: float  # mean over runs of each run's best new-task success
    runs: dict[str, float]  # run -> its best new-task success


def learning_rate_scores(document: dict[str, Any], trainer: str) -> list[LearningRateScore]:
    """Each learning rate ``trainer`` ran at, best first (ties: the smaller rate first)."""
    best: dict[float, dict[str, float]] = {}
    for pid, rec in document["policies"].items():
        if pid == "pi0" or rec.get("trainer") != trainer or rec.get("lr") is None:
            continue
        run = pid.rsplit("/", 1)[0]
        runs = best.setdefault(float(rec["lr"]), {})
        runs[run] = max(runs.get(run, 0.0), float(rec["new_task_success"]))
    scores = [
        LearningRateScore(lr, sum(r.values()) / len(r), dict(sorted(r.items()))) for lr, r in best.items()
    ]
    return sorted(scores, key=lambda s: (-s.mean_best, s.lr))


def learning_rate_lines(document: dict[str, Any], trainer: str = "bc") -> list[str]:
    """The rule's outcome for ``trainer``; empty unless it ran at two or more learning rates."""
    scores = learning_rate_scores(document, trainer)
    if len(scores) < 2:
        return []
    lines = [
        f"{trainer}'s learning rates by the mean over runs of each run's best new-task success (the rule "
        "that picks DAgger's learning rate in study 2):",
        "",
    ]
    for s in scores:
        runs = ", ".join(f"{rate:.0%}" for rate in s.runs.values())
        lines.append(f"- lr {s.lr:g}: {s.mean_best:.1%} (runs: {runs})")
    return [*lines, "", f"Best: lr {scores[0].lr:g}."]
