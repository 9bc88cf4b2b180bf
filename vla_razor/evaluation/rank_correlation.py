"""Spearman rank correlation inside one method, with two intervals, for "does forgetting rise with the
predictor among one method's checkpoints?".

- ``rho`` and ``p`` are ``scipy.stats.spearmanr`` (ties get average ranks; p from its t approximation,
  which treats the checkpoints as independent).
- ``fisher``: the Fisher-z interval tanh(atanh(rho) ± z·se) with Bonett & Wright's (2000) standard error
  for Spearman's rho, se = sqrt((1 + rho²/2) / (n - 3)). It also treats the n checkpoints as independent,
  which they are not (a run's checkpoints share one trajectory), so it is too narrow.

No interval resamples runs here, unlike the rest of the study: with 3 runs per method a run bootstrap has
10 distinct resamples, and a run drawn twice ties its own checkpoints with themselves, which pulls rho
towards the drawn runs' own ordering. On the committed study it gave PPO's forward KL [-0.80, -0.11], an
interval that excludes 0 around a rho of -0.31 whose p is 0.33.

Values are snapped to 12 decimals first: forgetting is a multiple of 1/(N · number of prior tasks), summed
in floating point, so two checkpoints that forget exactly as much can differ by 1e-17. Left as is, that
noise breaks real ties and changes the ranks (within PPO, drift's rho moves from -0.20 to -0.11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import spearmanr

from vla_razor.evaluation.stats import FloatArray, normal_quantile

SNAP_DECIMALS = 12


def snap(values: ArrayLike) -> FloatArray:
    """Values rounded to ``SNAP_DECIMALS`` decimals, so that ties lost to floating-point noise are ties."""
    return np.round(np.asarray(values, dtype=np.float64), SNAP_DECIMALS)


def spearman(x: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """Spearman's rho and its two-sided p (scipy), on snapped values; NaN if either side is constant."""
    xa, ya = snap(x), snap(y)
    if xa.size < 3 or np.unique(xa).size < 2 or np.unique(ya).size < 2:
        return float("nan"), float("nan")
    result = spearmanr(xa, ya)
    return float(result.statistic), float(result.pvalue)


def fisher_z_interval(rho: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval of a Spearman correlation with Bonett & Wright's standard error (see module doc).

    NaN below 4 points (n - 3 must be positive) or when rho is NaN; [rho, rho] when |rho| = 1."""
    if n < 4 or not math.isfinite(rho):
        return float("nan"), float("nan")
    if abs(rho) >= 1.0:
        return rho, rho
    half = normal_quantile(confidence) * math.sqrt((1.0 + rho * rho / 2.0) / (n - 3))
    z = math.atanh(rho)
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho of y on x over n points, its two-sided p and its Fisher-z interval (see module doc)."""

    rho: float
    p: float
    n: int
    fisher: tuple[float, float]


def rank_correlation(x: ArrayLike, y: ArrayLike, *, confidence: float = 0.95) -> RankCorrelation:
    """Spearman's rho of ``y`` on ``x`` over the finite pairs, with its p and Fisher-z interval."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {xa.shape} and {ya.shape}")
    ok = np.isfinite(xa) & np.isfinite(ya)
    rho, p = spearman(xa[ok], ya[ok])
    n = int(ok.sum())
    return RankCorrelation(rho, p, n, fisher_z_interval(rho, n, confidence))
