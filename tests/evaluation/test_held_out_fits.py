"""The batched held-out fits give what one fit per fold gives: ``numpy.polyfit`` for the polynomials,
``isotonic_regression`` on the fold's own points for the monotone fit."""

from __future__ import annotations

import numpy as np
import pytest

from vla_razor.evaluation.predictor_fits import held_out_predictions, isotonic_regression


def _fold_by_fold(x: np.ndarray, y: np.ndarray, labels: np.ndarray, degree: int) -> np.ndarray:
    out = np.empty_like(y)
    for label in np.unique(labels):
        held = labels == label
        if np.unique(x[~held]).size <= degree:
            out[held] = np.nan
        else:
            out[held] = np.polyval(np.polyfit(x[~held], y[~held], degree), x[held])
    return out


@pytest.mark.parametrize(("kind", "degree"), [("linear", 1), ("quadratic", 2)])
def test_batched_folds_equal_one_polyfit_per_fold(kind: str, degree: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 2.0, 60)  # forward KL-like: skewed, 0..16 nats
    y = 0.02 * x**2 - 0.1 * x + rng.normal(0.0, 0.1, 60)
    labels = np.array([f"run{i % 9}" for i in range(60)])
    got = held_out_predictions(x, y, labels, kind)
    np.testing.assert_allclose(got, _fold_by_fold(x, y, labels, degree), rtol=1e-9, atol=1e-12)


def test_a_fold_left_with_too_few_distinct_x_predicts_nan() -> None:
    # Holding out run "a" leaves x in {1, 2}: a line, but no quadratic; the other folds are determined.
    x = np.array([0.0, 3.0, 1.0, 1.0, 2.0, 2.0])
    y = np.array([0.0, 0.9, 0.1, 0.2, 0.4, 0.5])
    labels = np.array(["a", "a", "b", "b", "c", "c"])
    quadratic = held_out_predictions(x, y, labels, "quadratic")
    assert np.isnan(quadratic[:2]).all() and np.isfinite(quadratic[2:]).all()
    np.testing.assert_allclose(quadratic, _fold_by_fold(x, y, labels, 2), rtol=1e-9)
    assert np.isfinite(held_out_predictions(x, y, labels, "linear")).all()


def test_monotone_folds_equal_one_isotonic_fit_per_fold_exactly() -> None:
    # Tied x within and across runs, and a run drawn twice, as a bootstrap resample has them: the shared
    # pooling must give the very digits a fit on each fold's points alone gives, not merely close ones.
    rng = np.random.default_rng(5)
    x = np.round(rng.gamma(2.0, 2.0, 48), 1)
    y = np.tanh(0.3 * x) + rng.normal(0.0, 0.2, 48)
    labels = np.array([f"run{i % 8}" for i in range(48)])
    x, y, labels = (
        np.concatenate([x, x[:6]]),
        np.concatenate([y, y[:6]]),
        np.concatenate([labels, labels[:6]]),
    )
    expected = np.empty_like(y)
    for label in np.unique(labels):
        held = labels == label
        expected[held] = isotonic_regression(x[~held], y[~held])(x[held])
    np.testing.assert_array_equal(held_out_predictions(x, y, labels, "monotone"), expected)


@pytest.mark.parametrize("degree", [1, 2])
def test_which_folds_are_determined_matches_one_fit_per_fold_on_small_tied_samples(degree: int) -> None:
    # Few distinct x, ties within and across runs, integer run codes as the bootstraps pass them: a fold is
    # undetermined exactly when the x it trains on have no more distinct values than the degree.
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(2, 12))
        x = rng.integers(0, 4, n).astype(np.float64)
        y = rng.normal(size=n)
        labels = rng.integers(0, 4, n)
        if np.unique(labels).size < 2:
            continue
        kind = "linear" if degree == 1 else "quadratic"
        got = held_out_predictions(x, y, labels, kind)
        expected = _fold_by_fold(x, y, labels, degree)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        finite = np.isfinite(expected)
        np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-6, atol=1e-9)
