"""Leave-one-method-out, fold by fold: which held-out method breaks a curve fitted on the other methods?

RL's Razor claims one forgetting-vs-KL curve for every method. ``predictor_fits`` scores that claim with one
out-of-sample R² per predictor. One number hides where a fit fails, so here:

- each fold's share of the error: the held-out group's squared forecast error as a multiple of SST, the
  spread of ALL points around their overall mean. The shares sum to 1 - R², so a share of 127.8 names the
  fold that makes R² = -127.
- the same with forecasts clipped to forgetting's range [-1, 1] (as the forecast section clips them): a
  quadratic extrapolated far beyond the KL its fit saw can forecast a forgetting of 9, which no policy can
  have, and clipping separates "the curve has the wrong shape" from "the polynomial ran off the scale".
- leave-one-method-out over the methods left after dropping one (``transfer_without``): does the curve
  transfer between the remaining methods, or does one method carry the whole fit?
- an interval of the R² (``transfer_interval``) that resamples runs within each method: the study fixes
  its methods and draws seeds, so a resample keeps every method and its number of runs (a resample that
  drops a method would score another study's leave-one-method-out).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vla_razor.evaluation.predictor_fits import FitKind, held_out_predictions
from vla_razor.evaluation.stats import (
    DEFAULT_BOOTSTRAP,
    Bootstrap,
    BootstrapInterval,
    FloatArray,
    LabelArray,
    label_codes,
    labelled_points,
)


@dataclass(frozen=True)
class TransferScore:
    """Leave-one-group-out R² and each held-out group's share of the error (shares sum to 1 - r2)."""

    r2: float
    fold_share: dict[str, float]  # group -> SSE of its forecasts / SST of all points
    clipped: bool


def _finite_points(
    x: ArrayLike, y: ArrayLike, groups: ArrayLike
) -> tuple[FloatArray, FloatArray, LabelArray]:
    xa, ya, labels = labelled_points(x, y, groups, ("x", "y", "groups"))
    ok = np.isfinite(xa) & np.isfinite(ya)
    return xa[ok], ya[ok], labels[ok]


def leave_one_group_out(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    clip: tuple[float, float] | None = None,
) -> TransferScore:
    """Forecast every group from a fit on the other groups; R² and each fold's SSE as a share of SST.

    SST is taken around the mean of all points, as in ``predictor_fits.r2_score``, so R² here equals
    ``leave_one_run_out_r2`` with the groups as the held-out unit. With ``clip`` = (low, high) the
    forecasts are clipped to that range first. Fewer than 2 groups, a constant y or a fold whose fit is
    undetermined gives NaN.
    """
    xa, ya, labels = _finite_points(x, y, groups)
    if labels.dtype.kind == "O":  # mixed Python objects: compare and sort them as text
        labels = labels.astype(str)
    values = np.unique(labels)
    sst = float(np.sum((ya - ya.mean()) ** 2)) if ya.size else 0.0
    if values.size < 2 or sst == 0.0:
        return TransferScore(float("nan"), {str(g): float("nan") for g in values}, clip is not None)
    forecast = held_out_predictions(xa, ya, labels, kind)
    if clip is not None:
        forecast = np.clip(forecast, *clip)
    shares: dict[str, float] = {}
    for value in values:
        held = labels == value
        shares[str(value)] = float(np.sum((ya[held] - forecast[held]) ** 2)) / sst
    return TransferScore(1.0 - float(sum(shares.values())), shares, clip is not None)


def transfer_without(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    clip: tuple[float, float] | None = None,
) -> dict[str, float]:
    """For each group G: leave-one-group-out R² over the points of the OTHER groups (G dropped entirely).

    SST is recomputed over the points that remain. With fewer than 3 groups nothing is left to transfer
    between after a drop, so every value is NaN.
    """
    xa, ya, labels = _finite_points(x, y, groups)
    names = [str(g) for g in np.unique(labels)]
    out: dict[str, float] = {}
    for name in names:
        keep = labels.astype(str) != name
        out[name] = (
            leave_one_group_out(xa[keep], ya[keep], labels[keep], kind, clip=clip).r2
            if len(names) >= 3
            else float("nan")
        )
    return out


def transfer_interval(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    runs: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    clip: tuple[float, float] | None = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> BootstrapInterval:
    """Percentile interval of ``leave_one_group_out``'s R², resampling runs within each group."""
    draws = [
        leave_one_group_out(xr, yr, lr, kind, clip=clip).r2
        for xr, yr, lr in _run_resamples(x, y, groups, runs, bootstrap)
    ]
    return bootstrap.interval(draws)


def _run_resamples(
    x: ArrayLike, y: ArrayLike, groups: ArrayLike, runs: ArrayLike, bootstrap: Bootstrap
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(x, y, group codes) of each bootstrap resample of runs within each group (every resample keeps every
    group)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    labels, run_labels = np.asarray(groups), np.asarray(runs)
    if run_labels.shape != labels.shape:
        raise ValueError(f"runs must give one run id per point ({labels.size}), got shape {run_labels.shape}")
    codes = label_codes(labels)  # only R² is kept from a resample, and it needs no group names
    for idx in bootstrap.stratified_indices(run_labels, labels):
        yield xa[idx], ya[idx], codes[idx]


def fold_r2(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    clip: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Each held-out group's own R²: 1 - its forecast SSE / its points' spread around the mean of ALL points.

    Below 0, the curve fitted on the other groups forecasts this group worse than the pooled mean does: the
    curve does not hold for that group, however well the pooled R² looks. NaN where the group's points all
    sit at the pooled mean (nothing to explain) or the fold's fit is undetermined."""
    xa, ya, labels = _finite_points(x, y, groups)
    score = leave_one_group_out(xa, ya, labels, kind, clip=clip)
    sst = float(np.sum((ya - ya.mean()) ** 2)) if ya.size else 0.0
    out: dict[str, float] = {}
    for name, share in score.fold_share.items():
        spread = float(np.sum((ya[labels.astype(str) == name] - ya.mean()) ** 2))
        out[name] = 1.0 - share * sst / spread if spread > 0.0 else float("nan")
    return out


def fold_r2_intervals(
    x: ArrayLike,
    y: ArrayLike,
    groups: ArrayLike,
    runs: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    clip: tuple[float, float] | None = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> dict[str, BootstrapInterval]:
    """Percentile interval of each group's ``fold_r2``, resampling runs within each group (as
    ``transfer_interval``: every resample keeps every group)."""
    draws = [
        fold_r2(xr, yr, lr, kind, clip=clip) for xr, yr, lr in _run_resamples(x, y, groups, runs, bootstrap)
    ]
    names = [str(g) for g in np.unique(np.asarray(groups))]
    return {name: bootstrap.interval([d.get(name, float("nan")) for d in draws]) for name in names}
