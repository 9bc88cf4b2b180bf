"""The quadratic fit and R^2 against a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vla_razor.evaluation.fit import polyfit_r2


def test_exact_quadratic_has_r2_one() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    fit = polyfit_r2(x, 2 * x**2 - x + 0.5)
    np.testing.assert_allclose(fit.coefficients, [2.0, -1.0, 0.5], atol=1e-10)
    assert fit.r2 == pytest.approx(1.0)


def test_linear_fit_by_hand() -> None:
    # y = (1, 2, 2) at x = (0, 1, 2): slope 1/2, intercept 7/6; residuals (-1/6, 1/3, -1/6)
    # SS_res = 1/36 + 1/9 + 1/36 = 1/6 ; mean y = 5/3, SS_tot = 4/9 + 1/9 + 1/9 = 2/3 ; R^2 = 1 - 1/4 = 0.75
    fit = polyfit_r2(np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0]), degree=1)
    np.testing.assert_allclose(fit.coefficients, [0.5, 7 / 6])
    assert fit.r2 == pytest.approx(0.75)


def test_quadratic_by_hand() -> None:
    # Five points, y = x^2 plus a residual pattern orthogonal to {1, x, x^2}: (1, -4, 6, -4, 1) * 0.1
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    noise = 0.1 * np.array([1.0, -4.0, 6.0, -4.0, 1.0])
    y = x**2 + noise
    fit = polyfit_r2(x, y)
    np.testing.assert_allclose(fit.coefficients, [1.0, 0.0, 0.0], atol=1e-12)
    ss_res = float(np.sum(noise**2))  # 0.7
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    assert fit.r2 == pytest.approx(1 - ss_res / ss_tot)
    assert ss_res == pytest.approx(0.7)


def test_underdetermined_fit_reports_nan() -> None:
    fit = polyfit_r2(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    assert math.isnan(fit.r2)
    with pytest.raises(ValueError, match="equal length"):
        polyfit_r2(np.zeros(3), np.zeros(4))
