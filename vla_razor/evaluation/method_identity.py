"""Does a predictor explain forgetting beyond which method produced a checkpoint?

The methods forget at very different levels (BC far more than PPO), so any predictor that merely tells the
methods apart fits the pooled points well. Two baselines make that visible:

- ``label_r2``: R² of forgetting from the method label alone (one-way ANOVA: each point predicted by its
  method's mean), in sample and leave-one-run-out (each run predicted by the mean of its method's OTHER
  runs, the same held-out unit as the predictors' leave-one-run-out R²).
- ``beyond_label``: ANCOVA. Forgetting ~ one intercept per method + a common linear slope in the
  predictor. The partial R² is the share of the within-method variance that the slope explains,
  1 - SSE(method + x) / SSE(method), and the partial correlation is its signed square root (the sign of
  the slope). Intervals resample runs within each method (``stats.stratified_run_indices``), so every
  resample keeps every method and its number of runs. A partial R² is never below 0, so its interval
  cannot test "nothing within methods": the partial correlation's interval (does it exclude 0?) can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vla_razor.evaluation.predictor_fits import r2_score
from vla_razor.evaluation.stats import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    BootstrapInterval,
    FloatArray,
    LabelArray,
)


def _arrays(y: ArrayLike, groups: ArrayLike, runs: ArrayLike) -> tuple[FloatArray, LabelArray, LabelArray]:
    ya = np.asarray(y, dtype=np.float64)
    g = np.asarray(groups).astype(str)
    r = np.asarray(runs).astype(str)
    if not (ya.shape == g.shape == r.shape) or ya.ndim != 1:
        raise ValueError(
            f"y, groups and runs must be 1-D of equal length, got {ya.shape}, {g.shape}, {r.shape}"
        )
    return ya, g, r


def _group_means(y: FloatArray, groups: LabelArray) -> FloatArray:
    out = np.empty_like(y)
    for g in np.unique(groups):
        out[groups == g] = y[groups == g].mean()
    return out


def within_group_sse(y: FloatArray, groups: LabelArray) -> float:
    """Σ (y - mean of its group)²: what the method label leaves unexplained."""
    return float(np.sum((y - _group_means(y, groups)) ** 2))


@dataclass(frozen=True)
class LabelR2:
    in_sample: float
    loro: float  # NaN if some method has a single run (no other run to predict it from)
    interval: BootstrapInterval  # of in_sample, resampling runs within each method


def label_r2(
    y: ArrayLike,
    groups: ArrayLike,
    runs: ArrayLike,
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> LabelR2:
    """R² of ``y`` from the group label alone, in sample and leave-one-run-out (see module doc)."""
    ya, g, r = _arrays(y, groups, runs)
    in_sample = r2_score(ya, _group_means(ya, g))
    loro = np.empty_like(ya)
    for run in np.unique(r):
        held = r == run
        same = (g == g[held][0]) & ~held
        loro[held] = ya[same].mean() if same.any() else np.nan
    draws = [r2_score(ya[idx], _group_means(ya[idx], g[idx])) for idx in bootstrap.stratified_indices(r, g)]
    return LabelR2(in_sample, r2_score(ya, loro), bootstrap.interval(draws))


def ancova(x: FloatArray, y: FloatArray, groups: LabelArray) -> tuple[float, float]:
    """(partial R², slope) of y ~ group intercepts + slope·x; NaN when the label explains y exactly or x
    is constant within every group (no within-group variation to explain, or none to explain it with)."""
    names = np.unique(groups)
    design = np.column_stack([*(groups == g for g in names), x]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    sse_label = within_group_sse(y, groups)
    within_x = float(np.sum((x - _group_means(x, groups)) ** 2))
    if sse_label == 0.0 or within_x == 0.0:
        return float("nan"), float("nan")
    sse_full = float(np.sum((y - design @ coef) ** 2))
    return max(0.0, 1.0 - sse_full / sse_label), float(coef[-1])


def partial_correlation(partial_r2: float, slope: float) -> float:
    """The signed square root of a partial R² (the sign of the slope)."""
    if not (math.isfinite(partial_r2) and math.isfinite(slope)):
        return float("nan")
    return math.copysign(math.sqrt(partial_r2), slope)


@dataclass(frozen=True)
class BeyondLabel:
    """What a predictor adds to the method label: ANCOVA partial R² and partial correlation, with intervals."""

    partial_r2: float
    partial_r: float
    slope: float
    n: int
    r2_interval: BootstrapInterval
    r_interval: BootstrapInterval


def beyond_label(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    runs: ArrayLike,
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> BeyondLabel:
    """ANCOVA of ``y`` on the group label and ``x`` (finite points only), with run-resampled intervals."""
    ya, g, r = _arrays(y, groups, runs)
    xa = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya, g, r = xa[ok], ya[ok], g[ok], r[ok]
    if ya.size == 0:
        empty = bootstrap.interval([float("nan")])
        return BeyondLabel(float("nan"), float("nan"), float("nan"), 0, empty, empty)
    pr2, slope = ancova(xa, ya, g)
    fits = [ancova(xa[idx], ya[idx], g[idx]) for idx in bootstrap.stratified_indices(r, g)]
    return BeyondLabel(
        pr2,
        partial_correlation(pr2, slope),
        slope,
        int(ya.size),
        bootstrap.interval([f[0] for f in fits]),
        bootstrap.interval([partial_correlation(*f) for f in fits]),
    )
