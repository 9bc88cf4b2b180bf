"""Study 2's rule for DAgger's learning rate, on records worked out by hand."""

from __future__ import annotations

import pytest

from vla_razor.evaluation.lr_choice import learning_rate_lines, learning_rate_scores


def _rec(lr: float, success: float, trainer: str = "bc") -> dict:
    return {"trainer": trainer, "lr": lr, "new_task_success": success}


DOCUMENT = {
    "policies": {
        "pi0": {"new_task_success": 0.6},
        # lr 1e-4 peaks early (0.9, 0.5): mean of bests 0.7; lr 1e-5 peaks late (0.6, 0.7): 0.65.
        "bc_lr0.0001_seed0/step_20": _rec(1e-4, 0.9),
        "bc_lr0.0001_seed0/step_2000": _rec(1e-4, 0.2),
        "bc_lr0.0001_seed1/step_20": _rec(1e-4, 0.5),
        "bc_lr1e-05_seed0/step_2000": _rec(1e-5, 0.6),
        "bc_lr1e-05_seed1/step_20": _rec(1e-5, 0.1),
        "bc_lr1e-05_seed1/step_2000": _rec(1e-5, 0.7),
        "ppo_lr1e-05_seed0/step_40": _rec(1e-5, 1.0, trainer="ppo"),  # another trainer: not counted
    }
}


def test_each_run_counts_its_best_checkpoint_and_runs_are_averaged() -> None:
    scores = learning_rate_scores(DOCUMENT, "bc")
    assert [s.lr for s in scores] == [1e-4, 1e-5]
    assert scores[0].mean_best == pytest.approx(0.7) and scores[1].mean_best == pytest.approx(0.65)
    assert scores[0].runs == {"bc_lr0.0001_seed0": 0.9, "bc_lr0.0001_seed1": 0.5}
    assert learning_rate_lines(DOCUMENT)[-1] == "Best: lr 0.0001."


def test_a_single_learning_rate_has_no_choice_to_report() -> None:
    one = {"policies": {k: v for k, v in DOCUMENT["policies"].items() if "lr1e-05" not in k}}
    assert len(learning_rate_scores(one, "bc")) == 1 and learning_rate_lines(one) == []
