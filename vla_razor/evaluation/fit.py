"""Least-squares polynomial fits and their R^2 (RL's Razor fits forgetting quadratically in each metric)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PolyFit:
    coefficients: tuple[float, ...]  # highest degree first (numpy.polyval order)
    r2: float
    n: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.polyval(self.coefficients, x)


def polyfit_r2(x: np.ndarray, y: np.ndarray, degree: int = 2) -> PolyFit:
    """Ordinary least-squares fit y ~ poly(x) and R^2 = 1 - SS_res / SS_tot.

    With fewer distinct x values than coefficients the fit is underdetermined and R^2 is reported as
    NaN rather than a meaningless 1.0.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of equal length, got {x.shape} and {y.shape}")
    n = int(x.size)
    if len(np.unique(x)) <= degree:
        return PolyFit(tuple([float("nan")] * (degree + 1)), float("nan"), n)
    coefficients = np.polyfit(x, y, degree)
    residual = y - np.polyval(coefficients, x)
    ss_res = float(np.sum(residual**2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = float("nan") if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return PolyFit(tuple(float(c) for c in coefficients), r2, n)
