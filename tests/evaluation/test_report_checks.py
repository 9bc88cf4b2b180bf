"""The report's checks of what the study's data support, on small arrays whose answers are worked out by
hand: fold-by-fold leave-one-method-out (clipped and not), the method-label baseline and ANCOVA partial R²,
Spearman within a method, the pooled learning curve, and the matched-success table without pi0."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_razor.evaluation.learning_curve import arm_labels, learning_curves, two_proportion_test
from vla_razor.evaluation.method_identity import ancova, beyond_label, label_r2, partial_correlation
from vla_razor.evaluation.method_transfer import leave_one_group_out, transfer_interval, transfer_without
from vla_razor.evaluation.predictor_fits import leave_one_run_out_r2
from vla_razor.evaluation.rank_correlation import fisher_z_interval, rank_correlation, spearman
from vla_razor.evaluation.report_checks import demo_loss_lines, with_progress
from vla_razor.evaluation.stats import Bootstrap, stratified_run_indices
from vla_razor.evaluation.study import matched_success_table

# Two groups: A = (0, 0), (1, 1); B = (2, 2), (3, 2). ȳ = 1.25, SST = 1.5625 + 0.0625 + 0.5625 + 0.5625 = 2.75.
X, Y, G = [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 2.0], ["A", "A", "B", "B"]


def test_leave_one_group_out_shares_by_hand() -> None:
    # Fit on A: y = x, forecasts B as 2, 3 -> SSE_B = 0 + 1 = 1. Fit on B: y = 2, forecasts A as 2, 2 ->
    # SSE_A = 4 + 1 = 5. Shares 5/2.75 and 1/2.75; R² = 1 - 6/2.75.
    score = leave_one_group_out(X, Y, G, "linear")
    assert score.fold_share == pytest.approx({"A": 5 / 2.75, "B": 1 / 2.75})
    assert score.r2 == pytest.approx(1 - 6 / 2.75) and not score.clipped
    # The same R² as the predictors table's leave-one-out with the groups as the held-out unit.
    assert score.r2 == pytest.approx(leave_one_run_out_r2(X, Y, G, "linear"))
    # Clipped to [-1, 1.5]: A's forecasts 2, 2 -> 1.5, 1.5: SSE_A = 2.25 + 0.25 = 2.5; B's 2, 3 -> 1.5, 1.5:
    # SSE_B = 0.25 + 0.25 = 0.5. R² = 1 - 3/2.75.
    clipped = leave_one_group_out(X, Y, G, "linear", clip=(-1.0, 1.5))
    assert clipped.fold_share == pytest.approx({"A": 2.5 / 2.75, "B": 0.5 / 2.75})
    assert clipped.r2 == pytest.approx(1 - 3 / 2.75) and clipped.clipped


def test_leave_one_group_out_needs_two_groups_and_drops_non_finite_points() -> None:
    assert math.isnan(leave_one_group_out([1.0, 2.0], [1.0, 2.0], ["A", "A"]).r2)
    # A NaN predictor value drops its point: the result is that of the 4 finite points.
    score = leave_one_group_out([*X, float("nan")], [*Y, 9.0], [*G, "B"], "linear")
    assert score.r2 == pytest.approx(1 - 6 / 2.75)


def test_transfer_without_drops_one_group_entirely() -> None:
    # Adding C far away: without C, the result is exactly the A/B case above.
    x, y, g = [*X, 10.0, 11.0], [*Y, 5.0, 7.0], [*G, "C", "C"]
    without = transfer_without(x, y, g, "linear")
    assert without["C"] == pytest.approx(1 - 6 / 2.75)
    assert set(without) == {"A", "B", "C"}
    # Two groups: dropping one leaves nothing to transfer between.
    assert all(math.isnan(v) for v in transfer_without(X, Y, G, "linear").values())


def test_label_r2_by_hand() -> None:
    # a: runs a1 (y = 1), a2 (3); b: b1 (5), b2 (7). Means 2 and 6: SSE = 4 x 1 = 4; ȳ = 4, SST = 20.
    # In sample R² = 1 - 4/20 = 0.8. Leave-one-run-out: a1 from a2 (3): error 4, and so on: SSE = 16, R² = 0.2.
    result = label_r2(
        [1.0, 3.0, 5.0, 7.0], ["a", "a", "b", "b"], ["a1", "a2", "b1", "b2"], bootstrap=Bootstrap(n_boot=50)
    )
    assert result.in_sample == pytest.approx(0.8) and result.loro == pytest.approx(0.2)
    assert result.interval.n_valid > 0


def test_ancova_partial_r2_by_hand() -> None:
    # a: x 0, 1, 2, y 0, 1, 2; b: x 0, 1, 2, y 10, 12, 11. Label only: SSE = 2 + 2 = 4.
    # Common slope = Σ within (x - x̄)(y - ȳ) / Σ within (x - x̄)² = (2 + 1) / (2 + 2) = 0.75.
    # Residuals a: -0.25, 0, 0.25 (0.125); b: -0.25, 1, -0.75 (1.625): SSE = 1.75. Partial R² = 1 - 1.75/4.
    x = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0])
    y = np.array([0.0, 1.0, 2.0, 10.0, 12.0, 11.0])
    g = np.array(["a"] * 3 + ["b"] * 3)
    pr2, slope = ancova(x, y, g)
    assert pr2 == pytest.approx(0.5625) and slope == pytest.approx(0.75)
    assert partial_correlation(pr2, slope) == pytest.approx(0.75)
    assert partial_correlation(0.25, -3.0) == pytest.approx(-0.5)
    # x constant within every method: nothing within methods to explain forgetting with.
    assert all(math.isnan(v) for v in ancova(np.array([1.0, 1, 1, 2, 2, 2]), y, g))
    result = beyond_label(x, y, g, ["a1", "a1", "a2", "b1", "b1", "b2"], bootstrap=Bootstrap(n_boot=50))
    assert result.partial_r2 == pytest.approx(0.5625) and result.partial_r == pytest.approx(0.75)
    assert result.n == 6 and result.r_interval.n_valid > 0


def test_stratified_resamples_keep_every_stratum_and_its_run_count() -> None:
    runs = np.array(["a1", "a1", "a2", "b1", "b2", "b3"])
    strata = np.array(["a", "a", "a", "b", "b", "b"])
    for idx in stratified_run_indices(runs, strata, n_boot=30, seed=1):
        drawn_a = [r for r in runs[idx] if r.startswith("a")]
        drawn_b = [r for r in runs[idx] if r.startswith("b")]
        # a draws 2 runs (a1 brings 2 points, a2 one), b draws 3 runs of one point each.
        assert 2 <= len(drawn_a) <= 4 and len(drawn_b) == 3
        assert sum(r == "a2" for r in drawn_a) + sum(r == "a1" for r in drawn_a) // 2 == 2


def test_spearman_counts_floating_point_ties_as_ties() -> None:
    # 0.1 + 0.2 = 0.30000000000000004 is 0.3 (forgetting sums k/n in floating point). Ranks of y with the tie:
    # 1.5, 1.5, 4, 3; of x: 1, 2, 3, 4. Deviations (-1, -1, 1.5, 0.5) and (-1.5, -0.5, 0.5, 1.5):
    # rho = 3.5 / sqrt(4.5 * 5) = 0.737865. Without the tie, ranks 2, 1, 4, 3 would give 3 / 5 = 0.6.
    rho, p = spearman([1.0, 2.0, 3.0, 4.0], [0.1 + 0.2, 0.3, 0.5, 0.4])
    assert rho == pytest.approx(3.5 / math.sqrt(22.5)) and 0 < p < 1
    assert all(math.isnan(v) for v in spearman([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]))


def test_fisher_z_interval_by_hand() -> None:
    # rho = 0.5, n = 12: z = atanh(0.5) = 0.549306; se = sqrt((1 + 0.125) / 9) = 0.353553;
    # half = 1.959964 x 0.353553 = 0.692952 -> [tanh(-0.143646), tanh(1.242258)] = [-0.142666, 0.846098].
    low, high = fisher_z_interval(0.5, 12)
    assert (low, high) == (pytest.approx(-0.142666, abs=1e-6), pytest.approx(0.846098, abs=1e-6))
    assert fisher_z_interval(1.0, 12) == (1.0, 1.0)
    assert all(math.isnan(v) for v in fisher_z_interval(0.5, 3))
    rc = rank_correlation([1.0, 2.0, 3.0, 4.0, float("nan")], [0.1 + 0.2, 0.3, 0.5, 0.4, 1.0])
    assert rc.n == 4 and rc.rho == pytest.approx(3.5 / math.sqrt(22.5))


def test_two_proportion_test_by_hand() -> None:
    # BC's first and last checkpoints pooled: 67/156 vs 35/156. Pooled p = 102/312 = 0.326923;
    # se = sqrt(0.326923 x 0.673077 x 2/156) = 0.0531138; z = (32/156) / se = 3.86205.
    test = two_proportion_test(67, 156, 35, 156)
    assert test.difference == pytest.approx(32 / 156) and test.z == pytest.approx(3.86205, abs=1e-5)
    assert test.p == pytest.approx(1.1244e-4, rel=1e-3)
    assert math.isnan(two_proportion_test(0, 5, 0, 5).z)


def _record(trainer: str, step: int, successes: list[int], lr: float = 1e-4, **extra) -> dict:
    return {"trainer": trainer, "lr": lr, "step": step, "tasks": {"new": {"successes": successes}}, **extra}


def test_learning_curves_pool_runs_per_step() -> None:
    document = {
        "suite": {"new_task": "new"},
        "policies": {
            "pi0": {"tasks": {"new": {"successes": [0, 0]}}},
            "bc_s0/step_1": _record("bc", 1, [1, 1, 0, 0]),
            "bc_s1/step_1": _record("bc", 1, [1, 1, 1, 0]),
            "bc_s0/step_2": _record("bc", 2, [0, 0, 0, 1]),
            "bc_s1/step_2": _record("bc", 2, [0, 1, 0, 0]),
        },
    }
    curve = learning_curves(document)["bc"]
    assert [s.step for s in curve.steps] == [1, 2]
    first, last = curve.steps
    assert (first.success.k, first.success.n, last.success.k, last.success.n) == (5, 8, 2, 8)
    assert first.per_run == {"bc_s0": 0.5, "bc_s1": 0.75}
    # Wilson, from scipy: 5/8 -> center 0.584449, half 0.278707 -> [0.305742, 0.863156].
    assert (first.success.low, first.success.high) == (
        pytest.approx(0.305742, abs=1e-5),
        pytest.approx(0.863156, abs=1e-5),
    )
    test = curve.first_vs_last()
    assert test is not None and test.difference == pytest.approx(3 / 8)


def test_a_trainer_at_several_learning_rates_is_one_arm_per_rate() -> None:
    records = {
        "bc_a/step_1": _record("bc", 1, [1], lr=1e-5),
        "bc_b/step_1": _record("bc", 1, [0], lr=1e-4),
        "ppo_a/step_1": _record("ppo", 1, [1], lr=1e-5),
    }
    assert arm_labels(records) == {
        "bc_a/step_1": "bc lr 1e-05",
        "bc_b/step_1": "bc lr 0.0001",
        "ppo_a/step_1": "ppo",
    }
    document = {"suite": {"new_task": "new"}, "policies": records}
    assert sorted(learning_curves(document)) == ["bc lr 0.0001", "bc lr 1e-05", "ppo"]


def test_demo_loss_table_means_over_runs_per_arm_and_step() -> None:
    def losses(train: float, held: float) -> dict:
        return {"demo_losses": {"train_demos_loss": train, "val_loss": held}}

    document = {
        "suite": {"new_task": "new"},
        "policies": {
            "pi0": {"tasks": {"new": {"successes": [0]}}},
            "bc_s0/step_20": _record("bc", 20, [0], **losses(2.0, 2.5)),
            "bc_s1/step_20": _record("bc", 20, [0], **losses(1.0, 1.5)),
            "bc_s0/step_60": _record("bc", 60, [1], **losses(0.5, 2.0)),
            "ppo_s0/step_5": _record("ppo", 5, [1]),  # no demo losses: not in the table
        },
    }
    lines = demo_loss_lines(document)
    assert lines[-2:] == [
        "| bc | 20 | 1.500 (2.000, 1.000) | 2.000 (2.500, 1.500) | 0.500 (0.500, 0.500) |",
        "| bc | 60 | 0.500 (0.500) | 2.000 (2.000) | 1.500 (1.500) |",
    ]
    without = {
        **document,
        "policies": {k: v for k, v in document["policies"].items() if not k.startswith("bc")},
    }
    assert demo_loss_lines(without) == []


def test_progress_is_the_fraction_of_the_run() -> None:
    points = [
        {"run": "a", "step": 10},
        {"run": "a", "step": 40},
        {"run": "b", "step": 500},
        {"run": "b", "step": 2000},
        {"run": "c", "step": None},
    ]
    progress = [p["progress"] for p in with_progress(points)]
    assert progress[:4] == [0.25, 1.0, 0.25, 1.0] and math.isnan(progress[4])


def test_matched_success_without_pi0_holds_a_method_at_its_first_frontier_point() -> None:
    points = [
        {"method": "pi0", "run": "pi0", "new_task_success": 0.0, "prior_success": 0.9},
        {"method": "bc", "run": "bc0", "new_task_success": 0.4, "prior_success": 0.3},
        {"method": "bc", "run": "bc1", "new_task_success": 0.6, "prior_success": 0.2},
    ]
    # With pi0: at 20%, halfway from (0, 0.9) to (0.4, 0.3) -> 60%. Without: held at bc's first point -> 30%.
    anchored = matched_success_table(points, (0.2,))
    alone = matched_success_table(points, (0.2,), with_pi0=False)
    assert anchored[2].startswith("| bc (2 runs) | 60% [")
    assert alone[2].startswith("| bc (2 runs) | 30% [")


def test_transfer_interval_resamples_runs_within_each_group() -> None:
    # One run per group: every resample is the data itself, so the interval is the point itself.
    ci = transfer_interval(X, Y, G, ["a", "a", "b", "b"], "linear", bootstrap=Bootstrap(n_boot=20))
    assert (ci.low, ci.high, ci.n_valid) == (
        pytest.approx(1 - 6 / 2.75),
        pytest.approx(1 - 6 / 2.75),
        20,
    )
    # Two one-point runs in A: a resample drawing one of them twice leaves A a single x, where the linear fit
    # on A is undetermined (NaN, dropped); drawing each once is the data itself. Every resample keeps B.
    wide = transfer_interval(X, Y, G, ["a1", "a2", "b", "b"], "linear", bootstrap=Bootstrap(n_boot=50))
    assert 0 < wide.n_valid < 50
    assert wide.low == pytest.approx(1 - 6 / 2.75) and wide.high == pytest.approx(1 - 6 / 2.75)
