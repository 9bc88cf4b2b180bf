"""The statistics layer of the RL's Razor study, checked against hand-computed examples.

Every expected number below is derived in a comment from the definition, not copied from the code's output.
Random checks (bootstrap, coverage) use seeded generators and bands several standard errors wide, so they
hold on any CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vla_razor.errors import UserError
from vla_razor.evaluation.fit import polyfit_r2
from vla_razor.evaluation.forecast import (
    Calibration,
    calibrate_forecast,
    forecast_forgetting,
    validate_forecast,
)
from vla_razor.evaluation.frontier import (
    frontier_prior_at,
    matched_prior_success,
    near_frontier,
    pareto_frontier,
)
from vla_razor.evaluation.predictor_fits import (
    MIN_POINTS_FOR_R2,
    assess_predictor,
    bootstrap_r2,
    compare_predictors,
    in_sample_r2,
    isotonic_regression,
    leave_one_run_out_r2,
)
from vla_razor.evaluation.stats import (
    Bootstrap,
    bootstrap_run_indices,
    clopper_pearson_interval,
    clustered_mean,
    paired_difference,
    paired_forgetting,
    percentile_interval,
    wilson_interval,
)

Z95 = 1.959963984540054  # standard-normal 97.5% quantile


# --- success intervals ------------------------------------------------------------------------------------


def test_wilson_interval_known_values() -> None:
    # 0/10: [0, z²/(n+z²)] = [0, 3.841459/13.841459] = [0, 0.277533]
    w = wilson_interval(0, 10)
    assert w.low == 0.0 and w.high == pytest.approx(Z95**2 / (10 + Z95**2)) == pytest.approx(
        0.277533, abs=1e-6
    )
    # 10/10: [n/(n+z²), 1] = [10/13.841459, 1] = [0.722467, 1]
    w = wilson_interval(10, 10)
    assert w.high == 1.0 and w.low == pytest.approx(0.722467, abs=1e-6)
    # 5/10: center 0.5; half = z/(1+z²/10) * sqrt(0.25/10 + z²/400)
    #      = 1.959964/1.384146 * sqrt(0.025 + 0.009604) = 1.415999 * 0.186020 = 0.263407
    w = wilson_interval(5, 10)
    assert (w.low, w.high) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))
    assert w.rate == 0.5 and w.method == "wilson"


def test_clopper_pearson_known_values() -> None:
    # k = 0: upper = 1 - (alpha/2)^(1/n) = 1 - 0.025^0.1 = 1 - 0.691503 = 0.308497
    cp = clopper_pearson_interval(0, 10)
    assert cp.low == 0.0 and cp.high == pytest.approx(1 - 0.025**0.1, abs=1e-9)
    # k = n: lower = (alpha/2)^(1/n) = 0.691503
    cp = clopper_pearson_interval(10, 10)
    assert cp.high == 1.0 and cp.low == pytest.approx(0.025**0.1, abs=1e-9)
    # 5/10: the textbook exact interval [0.1871, 0.8129]; it contains Wilson's (exact is conservative)
    cp = clopper_pearson_interval(5, 10)
    assert (cp.low, cp.high) == (pytest.approx(0.187086, abs=1e-5), pytest.approx(0.812914, abs=1e-5))
    w = wilson_interval(5, 10)
    assert cp.low < w.low and cp.high > w.high


def test_interval_bad_input() -> None:
    for k, n in ((-1, 10), (11, 10), (0, 0)):
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(k, n)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson_interval(1, 2, confidence=1.0)


# --- paired forgetting ------------------------------------------------------------------------------------


def test_paired_difference_all_seeds_agree_is_not_zero_width() -> None:
    # Both at 10/10: d_i = 0, so the SE is 0, but the Newcombe interval is not. a=10, b=c=d=0, so phi = 0
    # (a zero margin); p1 = p2 = 1 with Wilson lower end 0.722467, so low = -sqrt(0.277533² + 0) and
    # high = +sqrt(0 + 0.277533²).
    d = paired_difference([True] * 10, [True] * 10)
    assert d.difference == 0.0 and d.se == 0.0
    assert (d.low, d.high) == (pytest.approx(-0.277533, abs=1e-6), pytest.approx(0.277533, abs=1e-6))


def test_paired_difference_half_forgotten() -> None:
    # pi0 10/10, checkpoint 5/10 on the same seeds: d = five 1s, five 0s; mean 0.5;
    # sd(ddof=1) = sqrt(10 * 0.25 / 9); se = sd / sqrt(10) = sqrt(0.25 / 9) = 1/6.
    # Newcombe: a=5, b=5, c=d=0, so phi = 0; p1 = 1 (Wilson low 0.722467), p2 = 0.5 (Wilson 0.236593..0.763407)
    # low  = 0.5 - sqrt((1 - 0.722467)² + (0.763407 - 0.5)²) = 0.5 - sqrt(0.077023 + 0.069383) = 0.117367
    # high = 0.5 + sqrt(0² + (0.5 - 0.236593)²) = 0.763407
    d = paired_difference([1] * 10, [1] * 5 + [0] * 5)
    assert d.difference == 0.5 and d.se == pytest.approx(1 / 6)
    assert (d.low, d.high) == (pytest.approx(0.117367, abs=1e-5), pytest.approx(0.763407, abs=1e-6))


def test_paired_se_uses_per_seed_differences() -> None:
    # Checkpoint equals pi0 except that it fails seed 0: d = [1, 0 x 9], mean 0.1;
    # sd² = (0.9² + 9 * 0.1²) / 9 = 0.9 / 9 = 0.1, so se = sqrt(0.1 / 10) = 0.1.
    # Unpaired (the old formula): p1 = 0.5, p2 = 0.4, sqrt(0.25/9 + 0.24/9) = 0.2333, more than twice as wide.
    base = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    other = [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    d = paired_difference(base, other)
    assert d.difference == pytest.approx(0.1) and d.se == pytest.approx(0.1)
    assert d.se < math.sqrt(0.25 / 9 + 0.24 / 9) / 2


def test_paired_forgetting_over_tasks() -> None:
    # Task "drawer": 0.5 with se 1/6 (previous test); task "lift": identical outcomes, 0 with se 0.
    # Mean over 2 tasks = 0.25, se = sqrt((1/6)² + 0²) / 2 = 1/12.
    seeds = range(100, 110)
    pi0 = {"drawer": {s: True for s in seeds}, "lift": {s: s % 2 == 0 for s in seeds}}
    ckpt = {"drawer": {s: s < 105 for s in seeds}, "lift": {s: s % 2 == 0 for s in seeds}}
    f = paired_forgetting(pi0, ckpt, ["drawer", "lift"])
    assert f.per_task["drawer"].difference == 0.5 and f.per_task["lift"].difference == 0.0
    assert f.mean == pytest.approx(0.25) and f.se == pytest.approx(1 / 12)
    ckpt["lift"] = {s: True for s in range(100, 109)}
    with pytest.raises(ValueError, match="same seeds.*109"):
        paired_forgetting(pi0, ckpt, ["drawer", "lift"])


# --- clustered standard error -----------------------------------------------------------------------------


def test_clustered_se_by_hand() -> None:
    # Episodes g1 = [1, 3], g2 = [2], g3 = [6, 8]; N = 5, mean = 20/5 = 4.
    # Residual sums: S1 = -3 - 1 = -4, S2 = -2, S3 = 2 + 4 = 6; ΣS² = 16 + 4 + 36 = 56.
    # CR0: se² = 56 / 25 = 2.24 -> 1.496663.  CR1: se² = 3/2 * 2.24 = 3.36 -> 1.833030.
    # The naive iid SE would be sqrt(var([1,3,2,6,8], ddof=1) / 5) = sqrt(8.5 / 5) = 1.303840.
    values, episodes = [1, 3, 2, 6, 8], ["g1", "g1", "g2", "g3", "g3"]
    cr1 = clustered_mean(values, episodes)
    cr0 = clustered_mean(values, episodes, small_sample=False)
    assert cr1.mean == 4.0 and cr1.n == 5 and cr1.n_clusters == 3
    assert cr0.se == pytest.approx(math.sqrt(2.24)) and cr0.method == "CR0"
    assert cr1.se == pytest.approx(math.sqrt(3.36)) and cr1.method == "CR1"
    assert cr1.se > math.sqrt(8.5 / 5)


def test_clustered_se_equal_sizes_is_se_of_episode_means() -> None:
    # Episodes [1, 3], [4, 6], [7, 9]: means 2, 5, 8; sd(ddof=1) = 3; se of means = 3/sqrt(3) = sqrt(3).
    # CR1: S_g = 2 * (mean_g - 5) = -6, 0, 6; ΣS² = 72; se² = 3/2 * 72/36 = 3.
    cr1 = clustered_mean([1, 3, 4, 6, 7, 9], [0, 0, 1, 1, 2, 2])
    assert cr1.mean == 5.0 and cr1.se == pytest.approx(math.sqrt(3))
    assert math.isnan(clustered_mean([1.0, 2.0], [0, 0]).se)  # one episode: no between-episode spread


# --- fits, R², leave-one-run-out --------------------------------------------------------------------------


def test_isotonic_pav_by_hand() -> None:
    # [1, 3, 2, 4, 5, 6]: 3 > 2 violates, pooled to 2.5, 2.5; the rest is already non-decreasing.
    fit = isotonic_regression([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 5, 6])
    assert fit.y == (1.0, 2.5, 2.5, 4.0, 5.0, 6.0)
    # Between knots the fit is interpolated, outside held constant: f(2.5) = 2.5, f(0) = 1, f(9) = 6.
    assert list(fit([2.5, 0.0, 9.0])) == [2.5, 1.0, 6.0]
    # [3, 1, 2]: 3 > 1 pools to 2 (weight 2), then 2 <= 2 stops: all 2.
    assert isotonic_regression([1, 2, 3], [3, 1, 2]).y == (2.0, 2.0, 2.0)
    # Tied x = 1 with y 0 and 2: one block of mean 1, weight 2; then y = 0 at x = 2 violates:
    # (1 * 2 + 0 * 1) / 3 = 2/3 for both knots.
    tied = isotonic_regression([1, 1, 2], [0, 2, 0])
    assert tied.x == (1.0, 2.0) and tied.y == pytest.approx((2 / 3, 2 / 3))


def test_isotonic_properties_on_random_data() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(size=40), rng.normal(size=40)
    fit = isotonic_regression(x, y)
    assert np.all(np.diff(fit.y) >= 0)
    # PAV pools into block means, so the fitted values keep the total of y (the intercept condition).
    assert fit(x).sum() == pytest.approx(y.sum())


def test_r2_in_sample_and_leave_one_run_out_monotone_by_hand() -> None:
    # Runs A: (1,1),(2,3)  B: (3,2),(4,4)  C: (5,5),(6,6).  ȳ = 21/6 = 3.5;
    # SS_tot = 6.25 + 0.25 + 2.25 + 0.25 + 2.25 + 6.25 = 17.5.
    x, y, runs = [1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 5, 6], ["A", "A", "B", "B", "C", "C"]
    # In-sample: fit 1, 2.5, 2.5, 4, 5, 6 -> SS_res = 0.25 + 0.25 = 0.5 -> R² = 1 - 0.5/17.5 = 0.971429.
    assert in_sample_r2(x, y, "monotone") == pytest.approx(1 - 0.5 / 17.5)
    # Hold out A: B∪C is monotone (2,4,5,6 at 3..6); x = 1, 2 are below the range -> 2, 2;
    #   errors (1-2)² + (3-2)² = 2.
    # Hold out B: A∪C = (1,1),(2,3),(5,5),(6,6); x = 3 -> 3 + 2/3 = 3.6667, x = 4 -> 3 + 4/3 = 4.3333;
    #   errors (2 - 11/3)² + (4 - 13/3)² = 25/9 + 1/9 = 26/9.
    # Hold out C: A∪B pools to 1, 2.5, 2.5, 4; x = 5, 6 are above the range -> 4, 4; errors 1 + 4 = 5.
    # SS_res_oos = 2 + 26/9 + 5 = 89/9;  R²_oos = 1 - (89/9) / 17.5 = 0.434921.
    assert leave_one_run_out_r2(x, y, runs, "monotone") == pytest.approx(1 - (89 / 9) / 17.5)


def test_leave_one_run_out_quadratic_can_be_negative() -> None:
    # Four one-point runs (0,0),(1,1),(2,4),(3,3). Each fold's quadratic interpolates the other 3 points;
    # the held-out prediction is the Lagrange polynomial:
    #   x=0 from (1,1),(2,4),(3,3): 1*3 + 4*(-3) + 3*1 = -6      -> error² 36
    #   x=1 from (0,0),(2,4),(3,3): 0 + 4*1 + 3*(-1/3) = 3        -> error² 4
    #   x=2 from (0,0),(1,1),(3,3): the line y = x -> 2            -> error² 4
    #   x=3 from (0,0),(1,1),(2,4): 0 + 1*(-3) + 4*3 = 9          -> error² 36
    # SS_res_oos = 80; ȳ = 2, SS_tot = 4 + 1 + 4 + 1 = 10; R²_oos = 1 - 80/10 = -7.
    assert leave_one_run_out_r2([0, 1, 2, 3], [0, 1, 4, 3], ["a", "b", "c", "d"]) == pytest.approx(-7.0)
    # In-sample, the quadratic is the same estimator as fit.polyfit_r2.
    x, y = [0, 1, 2, 3], [0, 1, 4, 3]
    assert in_sample_r2(x, y, "quadratic") == pytest.approx(polyfit_r2(np.array(x), np.array(y)).r2)


def test_leave_one_run_out_needs_two_runs() -> None:
    with pytest.raises(UserError, match="at least 2 training runs, got 1"):
        leave_one_run_out_r2([0, 1, 2, 3], [0, 1, 4, 3], ["ppo_s0"] * 4)


# --- bootstrap over runs ----------------------------------------------------------------------------------


def test_run_bootstrap_by_hand() -> None:
    # Two runs of two points each: A has y = 0, B has y = 1. A resample draws 2 runs with replacement:
    # AA (p = 1/4) -> mean 0, AB or BA (1/2) -> 0.5, BB (1/4) -> 1. Percentile 95% interval: [0, 1].
    y = np.array([0.0, 0.0, 1.0, 1.0])
    runs = ["A", "A", "B", "B"]
    samples = list(bootstrap_run_indices(runs, 2000, seed=0))
    assert all(len(idx) == 4 and np.sum(idx < 2) % 2 == 0 for idx in samples)  # whole runs only
    means = np.array([y[idx].mean() for idx in samples])
    for value, p in ((0.0, 0.25), (0.5, 0.5), (1.0, 0.25)):
        assert abs(np.mean(means == value) - p) < 0.05  # SE at most 0.011
    ci = percentile_interval(means, 0.95)
    assert (ci.low, ci.high, ci.n_valid, ci.n_boot) == (0.0, 1.0, 2000, 2000)


def _runs_data(rng: np.random.Generator, n_runs: int = 12, per_run: int = 3) -> tuple[np.ndarray, ...]:
    """Checkpoints along runs: forgetting = 0.5 * KL² + noise; a useless predictor is pure noise."""
    kl = rng.uniform(0.1, 1.0, size=(n_runs, per_run)).cumsum(axis=1).ravel()
    y = 0.5 * kl**2 + rng.normal(0, 0.05, size=kl.size)
    noise = rng.uniform(0, 3, size=kl.size)
    runs = np.repeat([f"run{i}" for i in range(n_runs)], per_run)
    return kl, y, noise, runs


def test_bootstrap_r2_reproducible_and_exact_relation() -> None:
    kl, y, _, runs = _runs_data(np.random.default_rng(1))
    a = bootstrap_r2(kl, y, runs, "quadratic", bootstrap=Bootstrap(n_boot=200, seed=7))
    assert a == bootstrap_r2(kl, y, runs, "quadratic", bootstrap=Bootstrap(n_boot=200, seed=7))
    assert a != bootstrap_r2(kl, y, runs, "quadratic", bootstrap=Bootstrap(n_boot=200, seed=8))
    # y exactly quadratic in x: every resample, in- or out-of-sample, has R² = 1, so the interval is [1, 1].
    exact = bootstrap_r2(kl, kl**2, runs, "quadratic", bootstrap=Bootstrap(n_boot=100, seed=0))
    assert exact.low == pytest.approx(1.0) and exact.high == pytest.approx(1.0) and exact.n_valid == 100


def test_compare_predictors_verdicts() -> None:
    kl, y, noise, runs = _runs_data(np.random.default_rng(2))
    opts = dict(bootstrap=Bootstrap(n_boot=200, seed=0))
    better = compare_predictors(kl, noise, y, runs, **opts)
    assert better.verdict == "A better" and better.interval is not None and better.interval.low > 0
    assert better.difference == pytest.approx(better.r2_a - better.r2_b)
    assert compare_predictors(noise, kl, y, runs, **opts).verdict == "B better"
    # The same predictor twice: every resample's difference is exactly 0, an interval [0, 0] contains 0.
    same = compare_predictors(kl, kl, y, runs, statistic="in_sample", **opts)
    assert same.verdict == "inconclusive" and (same.interval.low, same.interval.high) == (0.0, 0.0)


def test_too_few_points_are_not_meaningful() -> None:
    # The quickstart shape: 5 checkpoints of one run. No R² finding and no leave-one-run-out error.
    x, y, runs = [0.1, 0.2, 0.3, 0.4, 0.5], [0.0, 0.01, 0.05, 0.08, 0.13], ["ppo"] * 5
    assert MIN_POINTS_FOR_R2 == 10
    a = assess_predictor(x, y, runs)
    assert not a.meaningful and a.interval is None and math.isnan(a.r2_loro)
    assert a.describe() == "not meaningful: 5 points (< 10)"
    c = compare_predictors(x, y, y, runs)
    assert not c.meaningful and c.verdict == "inconclusive" and c.interval is None


def test_assess_predictor_meaningful() -> None:
    kl, y, _, runs = _runs_data(np.random.default_rng(4))
    a = assess_predictor(kl, y, runs, "monotone", bootstrap=Bootstrap(n_boot=100))
    assert a.meaningful and a.n == 36 and a.n_runs == 12
    assert a.r2_loro == pytest.approx(leave_one_run_out_r2(kl, y, runs, "monotone"))
    assert a.r2_in_sample > a.r2_loro > 0.8  # noise sd 0.05 on a curve spanning ~0..4
    assert "leave-one-run-out" in a.describe() and "95% CI over runs" in a.describe()
    # Non-finite predictor values (a checkpoint without the metric) are left out, not propagated.
    kl_nan = kl.copy()
    kl_nan[0] = np.nan
    assert assess_predictor(kl_nan, y, runs, bootstrap=Bootstrap(n_boot=20)).n == 35
    with pytest.raises(UserError, match="got 1"):
        assess_predictor(kl, y, ["one"] * kl.size)


def test_leave_one_method_out_by_hand() -> None:
    # Method A follows forgetting = KL, method B = KL + 1; two runs each, KL 0..4 per method.
    # Holding out B, the fit on A is exactly y = x and misses each B point by 1; holding out A, the fit on B
    # is y = x + 1 and misses each A point by 1: SS_res = 10. Overall mean 2.5, SS_tot = 11.25 + 11.25.
    # So R² = 1 - 10 / 22.5 = 5/9, for the line and for the monotone fit alike.
    x = np.array([0, 1, 2, 3, 4] * 2, dtype=float)
    y = x + np.repeat([0.0, 1.0], 5)
    runs = np.array(["a1"] * 3 + ["a2"] * 2 + ["b1"] * 3 + ["b2"] * 2)
    methods = np.repeat(["A", "B"], 5)
    for kind in ("linear", "monotone"):
        a = assess_predictor(
            x, y, runs, kind, groups=methods, group_name="method", bootstrap=Bootstrap(n_boot=50)
        )
        assert a.meaningful and a.held_out == "method"
        assert a.r2_loro == pytest.approx(5 / 9)
        assert a.describe(with_in_sample=False).startswith("leave-one-method-out 0.56 (95% CI over runs")
        assert "in-sample" in a.describe()
    # Leave-one-run-out keeps the held-out run's sibling in the fit, so it scores higher than 5/9.
    assert leave_one_run_out_r2(x, y, runs, "linear") > 5 / 9 + 0.05
    # A group must hold whole runs.
    with pytest.raises(ValueError, match="run a1 has points in several groups"):
        assess_predictor(x, y, runs, "linear", groups=["A", "B"] + ["A"] * 3 + ["B"] * 5)


# --- Pareto frontier and matched success ------------------------------------------------------------------

# (new-task success, prior-skill success)
FRONT = {
    "P0": (0.0, 0.90),  # frontier
    "P1": (0.2, 0.88),  # frontier
    "P2": (0.4, 0.80),  # frontier
    "P3": (0.6, 0.70),  # frontier
    "P4": (0.3, 0.70),  # beaten by P2 by (0.1, 0.1): dropped
    "P5": (0.39, 0.79),  # beaten by P2 by (0.01, 0.01): within 2 points
    "P6": (0.58, 0.68),  # beaten by P3 by exactly (0.02, 0.02): within 2 points (inclusive)
    "P7": (0.57, 0.68),  # beaten by P3 by (0.03, 0.02): dropped
}


def _front() -> tuple[np.ndarray, np.ndarray, list[str]]:
    names = list(FRONT)
    return np.array([FRONT[k][0] for k in names]), np.array([FRONT[k][1] for k in names]), names


def test_pareto_frontier_and_near_frontier() -> None:
    new, prior, names = _front()
    assert [names[i] for i in pareto_frontier(new, prior)] == ["P0", "P1", "P2", "P3"]
    kept = near_frontier(new, prior, tolerance=0.02)
    assert [n for n, k in zip(names, kept, strict=True) if k] == ["P0", "P1", "P2", "P3", "P5", "P6"]
    assert list(near_frontier(new, prior, tolerance=0.0)) == [True] * 4 + [False] * 4
    # Exact duplicates are one frontier point.
    assert len(pareto_frontier([0.5, 0.5], [0.5, 0.5])) == 1


def test_frontier_interpolation_by_hand() -> None:
    new, prior, _ = _front()
    # 0.1 is halfway between P0 (0, 0.90) and P1 (0.2, 0.88) -> 0.89; 0.5 halfway P2 (0.4, 0.8)..P3 (0.6, 0.7)
    # -> 0.75; 0.6 is P3 -> 0.70; -0.1 is below the frontier: P0 reaches it and keeps the most -> 0.90;
    # 0.7 is beyond every checkpoint -> NaN.
    got = frontier_prior_at(new, prior, [0.1, 0.5, 0.6, -0.1, 0.7])
    assert got[:4] == pytest.approx([0.89, 0.75, 0.70, 0.90])
    assert np.isnan(got[4])
    # A one-point frontier (the last checkpoint dominates the rest) still answers every level below it.
    assert frontier_prior_at([0.1, 0.3], [0.8, 0.85], [0.05, 0.2, 0.3, 0.31])[:3] == pytest.approx([0.85] * 3)
    assert frontier_prior_at(new, prior, 0.1) == pytest.approx([0.89])


def test_matched_prior_bootstrap_by_hand() -> None:
    # Run A: (0, 0.9), (0.5, 0.5); run B: (0, 0.9), (0.5, 0.7). At new-task success 0.25:
    # A alone -> (0.9 + 0.5)/2 = 0.7; B alone or A+B (B's point dominates A's) -> (0.9 + 0.7)/2 = 0.8.
    # Resamples: AA with p = 1/4 -> 0.7, otherwise 0.8. Estimate on all points: 0.8; 95% interval [0.7, 0.8].
    new, prior, runs = [0, 0.5, 0, 0.5], [0.9, 0.5, 0.9, 0.7], ["A", "A", "B", "B"]
    m = matched_prior_success(new, prior, runs, [0.25, 0.9], bootstrap=Bootstrap(n_boot=400, seed=0))
    assert m.prior[0] == pytest.approx(0.8) and math.isnan(m.prior[1])
    ci = m.intervals[0]
    assert (ci.low, ci.high) == (pytest.approx(0.7), pytest.approx(0.8)) and ci.n_valid == 400
    assert m.intervals[1].n_valid == 0 and math.isnan(m.intervals[1].low)  # 0.9 is never covered
    # Same seed, same resamples (repr, since NaN != NaN in a dataclass comparison).
    assert repr(m) == repr(
        matched_prior_success(new, prior, runs, [0.25, 0.9], bootstrap=Bootstrap(n_boot=400, seed=0))
    )
    # pi0 as an anchor joins every resample's frontier: run A alone, (0, 0.9) and (0.5, 0.5), with the anchor
    # (0.1, 0.95) -> at 0.25: between (0.1, 0.95) and (0.5, 0.5) -> 0.95 - 0.45 * 0.15 / 0.4 = 0.78125.
    anchored = matched_prior_success(
        [0, 0.5], [0.9, 0.5], ["A", "A"], [0.25], bootstrap=Bootstrap(n_boot=10), anchor=(0.1, 0.95)
    )
    assert anchored.prior[0] == pytest.approx(0.78125) and anchored.intervals[0].low == pytest.approx(0.78125)


# --- forecast ---------------------------------------------------------------------------------------------


def test_forecast_interval_by_hand() -> None:
    # x = 0, 1, 2; y = 0, 0.1, 0.3 (degree 1). x̄ = 1, ȳ = 2/15, Sxx = 2, Sxy = 0.3 -> slope 0.15,
    # intercept -1/60. Residuals 1/60, -1/30, 1/60 -> SS_res = 1/600, s² = (1/600)/(3 - 2) = 1/600.
    # At x0 = 3: ŷ = 0.45 - 1/60 = 0.433333; 1 + 1/n + (x0 - x̄)²/Sxx = 1 + 1/3 + 2 = 10/3;
    # se_pred = sqrt(1/600 * 10/3) = 0.0745356; t(0.95, df=1) = 6.313752; half = 0.4705993.
    cal = calibrate_forecast([0, 1, 2], [0, 0.1, 0.3], ["a", "b", "c"], suite="s", pi0_hash="h", degree=1)
    assert cal.coefficients == pytest.approx((0.15, -1 / 60)) and cal.residual_scale == pytest.approx(
        math.sqrt(1 / 600)
    )
    f = forecast_forgetting(cal, 3.0, suite="s", pi0_hash="h")
    assert f.forgetting == pytest.approx(13 / 30)
    assert f.low == pytest.approx(13 / 30 - 0.4705993, abs=1e-6)
    assert f.high == pytest.approx(13 / 30 + 0.4705993, abs=1e-6)
    assert f.extrapolated and f.confidence == 0.9
    assert not forecast_forgetting(cal, 1.5, suite="s", pi0_hash="h").extrapolated
    # At x0 = 10 the line leaves forgetting's range: ŷ = 1.5 - 1/60 = 1.483333; 1 + 1/3 + 81/2 = 41.833333;
    # half = sqrt(41.833333 / 600) * 6.313752 = 1.667134. Point and high clip to 1; low = 1.483333 - 1.667134.
    far = forecast_forgetting(cal, 10.0, suite="s", pi0_hash="h")
    assert far.forgetting == 1.0 and far.high == 1.0
    assert far.low == pytest.approx(1.483333 - 1.667134, abs=1e-5)
    # Far below, the point and low clip to -1 (a line cannot forecast gains beyond a whole success rate).
    below = forecast_forgetting(cal, -100.0, suite="s", pi0_hash="h")
    assert below.forgetting == -1.0 and below.low == -1.0 and below.high == 1.0


def test_validate_forecast_scores_extrapolations_apart() -> None:
    # Three runs, degree 1. Holding out c (KL 5, 6) leaves a and b (KL 0..1.5): both of c's are
    # extrapolated. Holding out a leaves KL 0.5..6: a's 0 is outside, its 1 inside. Holding out b leaves
    # 0..6: both inside. So 3 forecasts inside the fit's range and 3 extrapolated.
    kl = [0.0, 1.0, 0.5, 1.5, 5.0, 6.0]
    y = [0.0, 0.1, 0.06, 0.14, 0.2, 0.2]
    runs = ["a", "a", "b", "b", "c", "c"]
    v = validate_forecast(kl, y, runs, degree=1)
    assert (v.overall.n, v.within_range.n, v.extrapolated.n, v.n_skipped) == (6, 3, 3, 0)
    # The overall figures are the two parts' weighted by their counts.
    for name in ("coverage", "mean_abs_error", "mean_width"):
        parts = (getattr(v.within_range, name) * 3 + getattr(v.extrapolated, name) * 3) / 6
        assert getattr(v.overall, name) == pytest.approx(parts)
    # Same as scoring c by hand from a calibration on a and b, clipped to [-1, 1].
    cal = calibrate_forecast(kl[:4], y[:4], runs[:4], suite="s", pi0_hash="h", degree=1)
    c_errors = [
        abs(y0 - forecast_forgetting(cal, x0, suite="s", pi0_hash="h").forgetting)
        for x0, y0 in ((5.0, 0.2), (6.0, 0.2))
    ]
    a_hold = calibrate_forecast(kl[2:], y[2:], runs[2:], suite="s", pi0_hash="h", degree=1)
    a_error = abs(0.0 - forecast_forgetting(a_hold, 0.0, suite="s", pi0_hash="h").forgetting)
    assert v.extrapolated.mean_abs_error == pytest.approx((sum(c_errors) + a_error) / 3)
    # With every run inside the others' range nothing is extrapolated, and the empty part reads NaN.
    inside = validate_forecast([0.5, 1.5] * 3, [0.05, 0.15, 0.06, 0.14, 0.04, 0.16], runs, degree=1)
    assert inside.extrapolated.n == 0 and math.isnan(inside.extrapolated.coverage)
    assert inside.within_range.n == 6


@pytest.mark.parametrize("degree", [1, 2])
def test_forecast_coverage_on_synthetic_linear_data(degree: int) -> None:
    # forgetting = 0.05 + 0.2 * KL + N(0, 0.03²): the OLS prediction interval is exact here, so 90% intervals
    # cover a fresh checkpoint 90% of the time. 500 draws: SE = 0.013; band [0.85, 0.95] is ±3.7 SE.
    rng = np.random.default_rng(11)
    hits = 0
    draws = 500
    for _ in range(draws):
        kl = rng.uniform(0, 2, size=15)
        y = 0.05 + 0.2 * kl + rng.normal(0, 0.03, size=15)
        cal = calibrate_forecast(kl, y, np.arange(15), suite="s", pi0_hash="h", degree=degree)
        x0 = rng.uniform(0, 2)
        f = forecast_forgetting(cal, x0, suite="s", pi0_hash="h")
        hits += f.low <= 0.05 + 0.2 * x0 + rng.normal(0, 0.03) <= f.high
    assert 0.85 <= hits / draws <= 0.95


def test_validate_forecast_leave_one_run_out() -> None:
    # 12 runs x 4 checkpoints, independent noise sd 0.03: pooled over 10 data sets (480 forecasts) the
    # coverage of 90% intervals is ~0.90 (band ±~4 SE) and the MAE ~ 0.03 * sqrt(2/pi) = 0.024.
    rng = np.random.default_rng(5)
    cover, mae = [], []
    for _ in range(10):
        kl = rng.uniform(0, 0.5, size=(12, 4)).cumsum(axis=1).ravel()
        y = 0.05 + 0.2 * kl + rng.normal(0, 0.03, size=kl.size)
        runs = np.repeat(np.arange(12), 4)
        v = validate_forecast(kl, y, runs, degree=1)
        assert v.overall.n == 48 and v.n_skipped == 0 and v.n_runs == 12
        cover.append(v.overall.coverage)
        mae.append(v.overall.mean_abs_error)
    assert 0.84 <= np.mean(cover) <= 0.96
    assert 0.018 <= np.mean(mae) <= 0.032
    # Same numbers as forecasting each held-out run by hand from a calibration on the others.
    hits, errs = [], []
    for run in range(12):
        held = runs == run
        cal = calibrate_forecast(kl[~held], y[~held], runs[~held], suite="s", pi0_hash="h", degree=1)
        for x0, y0 in zip(kl[held], y[held], strict=True):
            f = forecast_forgetting(cal, float(x0), suite="s", pi0_hash="h")
            hits.append(f.low <= y0 <= f.high)
            errs.append(abs(y0 - f.forgetting))
    assert v.overall.coverage == pytest.approx(np.mean(hits))
    assert v.overall.mean_abs_error == pytest.approx(np.mean(errs))


def test_calibration_round_trip_and_bad_input() -> None:
    cal = calibrate_forecast([0, 1, 2, 3], [0, 1, 3, 4], ["a", "a", "b", "b"], suite="s", pi0_hash="abc")
    assert cal.degree == 2 and cal.n == 4 and cal.n_runs == 2
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    with pytest.raises(UserError, match="missing keys \\['pi0_hash'\\]"):
        Calibration.from_dict({k: v for k, v in cal.to_dict().items() if k != "pi0_hash"})
    with pytest.raises(UserError, match="needs a calibration"):
        forecast_forgetting(None, 0.1, suite="s", pi0_hash="abc")
    with pytest.raises(UserError, match="suite 's'.*suite 'other'"):
        forecast_forgetting(cal, 0.1, suite="other", pi0_hash="abc")
    with pytest.raises(UserError, match="pi0 'abc'.*pi0 'xyz'"):
        forecast_forgetting(cal, 0.1, suite="s", pi0_hash="xyz")
    with pytest.raises(UserError, match="at least 4 evaluated checkpoints.*got 3"):
        calibrate_forecast([0, 1, 2], [0, 1, 3], ["a", "b", "c"], suite="s", pi0_hash="h")
    with pytest.raises(UserError, match="degree must be one of"):
        calibrate_forecast([0, 1, 2], [0, 1, 3], ["a", "b", "c"], suite="s", pi0_hash="h", degree=3)
    with pytest.raises(UserError, match="at least 2 training runs, got 1"):
        validate_forecast([0, 1, 2, 3], [0, 1, 3, 4], ["a"] * 4)
