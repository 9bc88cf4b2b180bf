"""Forgetting: pi0's success on each prior skill minus the policy's, paired over the seeds both played."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_razor.evaluation.stats import paired_forgetting
from vla_razor.evaluation.suite_spec import SuiteSpec


def _outcomes(record: dict[str, Any], task: str) -> dict[int, bool]:
    summary = record["tasks"][task]
    return {int(s): bool(ok) for s, ok in zip(summary["seeds"], summary["successes"], strict=True)}


def add_forgetting(record: dict[str, Any], base: dict[str, Any], suite: SuiteSpec) -> dict[str, Any]:
    """Forgetting per prior task (pi0 success - policy success) and its mean, paired over the seeds both
    were scored on (Newcombe's interval per task; the SE of the mean treats tasks as independent)."""
    prior_tasks = list(suite.prior_tasks)
    prior = [record["tasks"][t]["success_rate"] for t in prior_tasks]
    prior_sem = [record["tasks"][t]["sem"] for t in prior_tasks]
    k = len(prior_tasks)
    if k:
        paired = paired_forgetting(
            {t: _outcomes(base, t) for t in prior_tasks},
            {t: _outcomes(record, t) for t in prior_tasks},
            prior_tasks,
        )
        record["forgetting"] = {
            "per_task": {t: d.difference for t, d in paired.per_task.items()},
            "per_task_interval": {t: [d.low, d.high] for t, d in paired.per_task.items()},
            "mean": paired.mean,
            "mean_sem": paired.se,
            "paired": True,
        }
    else:
        record["forgetting"] = {"per_task": {}, "mean": 0.0, "mean_sem": 0.0, "paired": True}
    record["prior_success"] = float(np.mean(prior)) if prior else float("nan")
    record["prior_success_sem"] = float(np.sqrt(np.sum(np.square(prior_sem))) / k) if k else 0.0
    record["new_task_success"] = record["tasks"][suite.new_task]["success_rate"]
    record["new_task_success_sem"] = record["tasks"][suite.new_task]["sem"]
    return record
