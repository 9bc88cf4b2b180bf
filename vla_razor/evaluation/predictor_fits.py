"""How well a predictor (forward KL, weight L2, ...) explains forgetting: the predictors table.

For points (x = predictor, y = forgetting, run = the training run a checkpoint came from):

- two fits: the quadratic least-squares fit of RL's Razor (``fit.polyfit_r2``), and a monotone
  non-decreasing fit (isotonic regression, pool-adjacent-violators), since forgetting should not fall as
  KL grows. A linear fit is also offered.
- in-sample R² and leave-one-run-out R². All checkpoints of a run are held out together, because
  checkpoints of one run are not independent, and holding out one checkpoint at a time lets its
  neighbours predict it.
- leave-one-method-out R² as well (``groups``): every run of one method held out together, so the
  curve fitted on the other methods must forecast a method it never saw. RL's Razor's claim is one curve
  for every method; with several seeds per method, leave-one-run-out keeps the held-out run's sibling
  seeds in the fit and tests less.
- bootstrap intervals of R², and of the difference of R² between two predictors, resampling runs
  (``stats.bootstrap_run_indices``).
- a guard: with fewer than ``MIN_POINTS_FOR_R2`` points, R² is flagged "not meaningful" instead of being
  reported as a finding.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import isotonic_regression as scipy_isotonic_regression

from vla_razor.errors import UserError
from vla_razor.evaluation.fit import polyfit_r2
from vla_razor.evaluation.stats import (
    DEFAULT_BOOTSTRAP,
    BoolArray,
    Bootstrap,
    BootstrapInterval,
    FloatArray,
    LabelArray,
    label_codes,
)

FitKind = Literal["linear", "quadratic", "monotone"]
Statistic = Literal["in_sample", "loro"]
Verdict = Literal["A better", "B better", "inconclusive"]

# Below this many points a 3-parameter fit's R² is mostly noise; the report says so instead of printing it.
MIN_POINTS_FOR_R2 = 10
_DEGREES = {"linear": 1, "quadratic": 2}


def _xy(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and y must be 1-D arrays of equal length, got {xa.shape} and {ya.shape}")
    return xa, ya


@dataclass(frozen=True)
class IsotonicFit:
    """A non-decreasing step fit, evaluated between its knots by linear interpolation."""

    x: tuple[float, ...]  # distinct training x, ascending
    y: tuple[float, ...]  # fitted value at each x, non-decreasing

    def __call__(self, x: ArrayLike) -> FloatArray:
        # Outside the training range the fit is held constant at the end values (no extrapolated trend).
        return np.interp(np.asarray(x, dtype=np.float64), self.x, self.y)


def isotonic_regression(x: ArrayLike, y: ArrayLike, weights: ArrayLike | None = None) -> IsotonicFit:
    """Weighted least-squares fit of y by a non-decreasing function of x (pool-adjacent-violators).

    Points with equal x are first pooled into one block (their weighted mean, summed weight), so tied x
    get one fitted value. ``scipy.optimize.isotonic_regression`` then fits the block means in order of x:
    while a block's mean is below the one before it, the two are merged into their weighted mean. The
    result minimises Σ w_i (y_i - f(x_i))² over non-decreasing f.
    """
    xa, ya = _xy(x, y)
    if xa.size == 0:
        raise ValueError("isotonic regression needs at least one point")
    w = np.ones_like(xa) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != xa.shape or (w <= 0).any():
        raise ValueError("weights must be positive, one per point")
    # scipy fits a sequence, not a function of x: tied x must share one value, so they are pooled first.
    knots, inverse = np.unique(xa, return_inverse=True)
    block_w = np.bincount(inverse, weights=w)
    block_mean = np.bincount(inverse, weights=w * ya) / block_w
    fitted = scipy_isotonic_regression(block_mean, weights=block_w, increasing=True).x
    return IsotonicFit(tuple(float(v) for v in knots), tuple(float(v) for v in fitted))


def fit_curve(x: ArrayLike, y: ArrayLike, kind: FitKind = "quadratic") -> Callable[[ArrayLike], FloatArray]:
    """The fitted function of one kind: a least-squares polynomial (linear/quadratic) or the isotonic fit.

    A polynomial with fewer distinct x than coefficients predicts NaN (``fit.polyfit_r2``), so any R²
    computed from it is NaN, never a spurious 1.0.
    """
    xa, ya = _xy(x, y)
    if kind == "monotone":
        return isotonic_regression(xa, ya)
    if kind not in _DEGREES:
        raise ValueError(f"unknown fit kind {kind!r}; valid: linear, quadratic, monotone")
    poly = polyfit_r2(xa, ya, degree=_DEGREES[kind])
    return lambda new: poly(np.asarray(new, dtype=np.float64))


def r2_score(y: ArrayLike, prediction: ArrayLike) -> float:
    """R² = 1 - Σ(y - ŷ)² / Σ(y - ȳ)², with ȳ the mean of ALL of y (NaN if y is constant or ŷ has NaN).

    For out-of-sample predictions this is the convention used here: the denominator is the spread around
    the overall mean, the same one as for the in-sample R². So the two are on one scale, and the
    out-of-sample value is below 0 exactly when the held-out predictions do worse than the overall mean.
    That mean has seen every point, which flatters the baseline slightly, not the fit.
    """
    ya = np.asarray(y, dtype=np.float64)
    pa = np.asarray(prediction, dtype=np.float64)
    if not np.isfinite(pa).all():
        return float("nan")
    ss_tot = float(np.sum((ya - ya.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((ya - pa) ** 2)) / ss_tot


def in_sample_r2(x: ArrayLike, y: ArrayLike, kind: FitKind = "quadratic") -> float:
    """R² of the fit on the points it was fitted to (optimistic; the monotone fit most of all)."""
    xa, ya = _xy(x, y)
    return r2_score(ya, fit_curve(xa, ya, kind)(xa))


def _n_runs(runs: ArrayLike) -> int:
    return int(np.unique(np.asarray(runs)).size)


def _require_runs(runs: ArrayLike, n: int) -> None:
    labels = np.asarray(runs)
    if labels.shape != (n,):
        raise ValueError(f"runs must give one run id per point ({n}), got shape {labels.shape}")
    count = _n_runs(labels)
    if count < 2:
        only = f" ({labels[0]!s})" if labels.size else ""
        raise UserError(
            f"leave-one-run-out needs checkpoints from at least 2 training runs, got {count}{only}; "
            "add runs (another seed or learning rate) or report in-sample R² only"
        )


class _Memo:
    """The last ``size`` results of a pure function, keyed by a digest of its inputs' contents.

    A report fits the same resample again in several sections (a predictor's interval, then each paired
    comparison with it): about 40% of study 1's held-out fits repeat one already made."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: OrderedDict[bytes, FloatArray] = OrderedDict()

    def get(self, key: bytes, compute: Callable[[], FloatArray]) -> FloatArray:
        if key in self.values:
            self.values.move_to_end(key)
        else:
            self.values[key] = compute()
            if len(self.values) > self.size:
                self.values.popitem(last=False)
        return self.values[key].copy()


_HELD_OUT = _Memo(16384)  # about 16 MB at a few hundred points per fit


def held_out_predictions(x: FloatArray, y: FloatArray, labels: LabelArray, kind: FitKind) -> FloatArray:
    """For each point, the prediction of a fit on the points of every OTHER label (its label held out).

    Polynomial fits solve every fold at once (``_held_out_polynomial``); the monotone fit goes fold by
    fold. A report's bootstraps call this hundreds of thousands of times, so the batch and the memo of
    repeated fits are what keep ``--from-results`` at seconds, not minutes."""
    xa = np.ascontiguousarray(x, dtype=np.float64)
    ya = np.ascontiguousarray(y, dtype=np.float64)
    names = np.asarray(labels)
    digest = hashlib.blake2b(xa.tobytes(), digest_size=16)
    digest.update(ya.tobytes())
    # Fixed-width labels (ints, numpy strings) hash from their buffer; joining them as text cost about
    # 5% of a report's rebuild. Object arrays have no stable buffer, so they go through str.
    digest.update(names.dtype.str.encode())
    digest.update(names.tobytes() if names.dtype.kind != "O" else "\0".join(map(str, names)).encode())
    digest.update(kind.encode())
    return _HELD_OUT.get(digest.digest(), lambda: _held_out(xa, ya, names, kind))


def _held_out(x: FloatArray, y: FloatArray, labels: LabelArray, kind: FitKind) -> FloatArray:
    if kind in _DEGREES:
        return _held_out_polynomial(x, y, labels, _DEGREES[kind])
    return _held_out_monotone(x, y, labels)


def _held_out_monotone(x: FloatArray, y: FloatArray, labels: LabelArray) -> FloatArray:
    """``held_out_predictions`` for the isotonic fit: fold by fold, the same numbers as ``isotonic_regression``
    on each fold's points. The distinct x are found once for all folds, and each fold pools its own
    points into them (``np.bincount`` adds a block's points in the same order as a fit on the fold alone
    does), so a report's hundred thousand folds skip a sort each."""
    knots, knot_of = np.unique(x, return_inverse=True)
    folds, fold_of = np.unique(labels, return_inverse=True)
    out = np.empty_like(y)
    for fold in range(folds.size):
        held = fold_of == fold
        train_knot = knot_of[~held]
        block_n = np.bincount(train_knot, minlength=knots.size).astype(np.float64)
        block_sum = np.bincount(train_knot, weights=y[~held], minlength=knots.size)
        seen = block_n > 0
        fitted = scipy_isotonic_regression(block_sum[seen] / block_n[seen], weights=block_n[seen]).x
        out[held] = np.interp(x[held], knots[seen], fitted)
    return out


def _held_out_polynomial(x: FloatArray, y: FloatArray, labels: LabelArray, degree: int) -> FloatArray:
    """``held_out_predictions`` for a polynomial: each fold's least squares as ``numpy.polyfit`` solves it
    (columns scaled to unit norm, an SVD solve with cutoff n·eps), all folds in one batched SVD, the
    held-out rows given zero weight (the same solution as dropping them). A fold with no more distinct x
    than the degree is undetermined and predicts NaN, as ``fit.polyfit_r2`` does."""
    folds, fold_of = np.unique(labels, return_inverse=True)
    keep = fold_of[None, :] != np.arange(folds.size)[:, None]  # (fold, point): trains on the point
    vander = np.vander(x, degree + 1)
    design = vander[None] * keep[..., None]
    scale = np.sqrt((design * design).sum(axis=1))
    scale[scale == 0.0] = 1.0  # an all-zero column: the fold is undetermined anyway
    solve = np.linalg.pinv(design / scale[:, None, :], rcond=x.size * np.finfo(np.float64).eps)
    coefficients = (solve @ (y * keep)[..., None])[..., 0] / scale
    # A fold trains on every distinct x except those that only its own points have.
    values, value_of = np.unique(x, return_inverse=True)
    pairs = np.unique(value_of * folds.size + fold_of)  # each (x value, fold) that occurs, once
    folds_per_value = np.bincount(pairs // folds.size, minlength=values.size)
    only_in = (pairs % folds.size)[folds_per_value[pairs // folds.size] == 1]
    distinct = values.size - np.bincount(only_in, minlength=folds.size)
    determined = distinct > degree
    out = (vander * coefficients[fold_of]).sum(axis=1)
    out[~determined[fold_of]] = np.nan
    return out


def leave_one_run_out_predictions(
    x: ArrayLike, y: ArrayLike, runs: ArrayLike, kind: FitKind = "quadratic"
) -> FloatArray:
    """For each point, the prediction of a fit on all OTHER runs (its whole run held out)."""
    xa, ya = _xy(x, y)
    _require_runs(runs, xa.size)
    if kind not in (*_DEGREES, "monotone"):
        raise ValueError(f"unknown fit kind {kind!r}; valid: linear, quadratic, monotone")
    return held_out_predictions(xa, ya, np.asarray(runs), kind)


def leave_one_run_out_r2(x: ArrayLike, y: ArrayLike, runs: ArrayLike, kind: FitKind = "quadratic") -> float:
    """Out-of-sample R² = 1 - SS_res_oos / SS_tot, SS_tot around the overall mean (see ``r2_score``).

    SS_res_oos sums the squared errors of every point predicted by a fit that never saw its run. It can be
    far below 0. A fold whose training runs cannot determine the fit (e.g. < 3 distinct x for the
    quadratic) makes it NaN. Fewer than 2 runs is a ``UserError``.
    """
    xa, ya = _xy(x, y)
    return r2_score(ya, leave_one_run_out_predictions(xa, ya, runs, kind))


def _r2(
    x: FloatArray,
    y: FloatArray,
    runs: LabelArray,
    kind: FitKind,
    statistic: Statistic,
    groups: LabelArray | None = None,
) -> float:
    """R² of one kind; out of sample, the held-out unit is a run, or a group of runs when ``groups`` is
    given (one label per point, constant within a run: e.g. the method)."""
    if statistic == "in_sample":
        return in_sample_r2(x, y, kind)
    if statistic != "loro":
        raise ValueError(f"unknown R² statistic {statistic!r}; valid: in_sample, loro")
    held_out = runs if groups is None else groups
    # A resample can draw one run (or one group) G times; its out-of-sample R² is undefined there.
    if _n_runs(held_out) < 2:
        return float("nan")
    return leave_one_run_out_r2(x, y, held_out, kind)


def _groups_of(groups: ArrayLike | None, runs: LabelArray) -> LabelArray | None:
    """``groups`` as an array checked against ``runs``: one label per point, constant within each run."""
    if groups is None:
        return None
    labels = np.asarray(groups)
    if labels.shape != runs.shape:
        raise ValueError(f"groups must give one label per point ({runs.size}), got shape {labels.shape}")
    for run in np.unique(runs):
        if np.unique(labels[runs == run]).size != 1:
            raise ValueError(f"run {run!s} has points in several groups; a group must hold whole runs")
    return labels


def bootstrap_r2(
    x: ArrayLike,
    y: ArrayLike,
    runs: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    statistic: Statistic = "loro",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    groups: ArrayLike | None = None,
) -> BootstrapInterval:
    """Percentile bootstrap interval of R² (in-sample or out of sample), resampling whole runs.

    Out of sample, a run is held out, or with ``groups`` a whole group of runs (see ``_r2``). Resamples
    where R² is undefined are dropped and counted in ``n_valid``: a constant y, or for "loro" a resample
    with a single distinct run (group).
    """
    xa, ya = _xy(x, y)
    labels = np.asarray(runs)
    group_labels = _groups_of(groups, labels)  # checked on the names, so an error names the run
    labels = label_codes(labels)
    if group_labels is not None:
        group_labels = label_codes(group_labels)
    values = [
        _r2(
            xa[idx],
            ya[idx],
            labels[idx],
            kind,
            statistic,
            None if group_labels is None else group_labels[idx],
        )
        for idx in bootstrap.run_indices(labels)
    ]
    return bootstrap.interval(values)


def r2_meaningful(n_points: int) -> bool:
    """Whether R² on this many points can be reported as a finding (see ``MIN_POINTS_FOR_R2``)."""
    return n_points >= MIN_POINTS_FOR_R2


def _not_meaningful_note(n: int) -> str:
    return f"not meaningful: {n} points (< {MIN_POINTS_FOR_R2})"


@dataclass(frozen=True)
class PredictorAssessment:
    """One cell of the predictors table: one predictor, one fit kind."""

    kind: FitKind
    n: int
    n_runs: int
    meaningful: bool  # False below MIN_POINTS_FOR_R2: the R² values must not be reported as findings
    r2_in_sample: float
    r2_loro: float  # NaN when not meaningful
    interval_of: Statistic  # which R² the bootstrap interval belongs to
    interval: BootstrapInterval | None  # None when not meaningful
    held_out: str = "run"  # the unit r2_loro holds out: "run", or the name of the groups (e.g. "method")

    def describe(self, *, with_in_sample: bool = True) -> str:
        """Text for a report cell; below the point guard it says "not meaningful" and gives no number."""
        if not self.meaningful:
            return _not_meaningful_note(self.n)
        parts = {
            "in_sample": f"in-sample {self.r2_in_sample:.2f}",
            "loro": f"leave-one-{self.held_out}-out {self.r2_loro:.2f}",
        }
        if self.interval is not None:
            ci = self.interval
            parts[self.interval_of] += f" ({ci.confidence:.0%} CI over runs [{ci.low:.2f}, {ci.high:.2f}])"
        if not with_in_sample:
            del parts["in_sample"]
        return ", ".join(parts.values())


def _finite(*arrays: FloatArray) -> BoolArray:
    ok = np.ones(arrays[0].shape, dtype=bool)
    for a in arrays:
        ok &= np.isfinite(a)
    return ok


def assess_predictor(
    x: ArrayLike,
    y: ArrayLike,
    runs: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    interval_of: Statistic = "loro",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    groups: ArrayLike | None = None,
    group_name: str = "group",
) -> PredictorAssessment:
    """In-sample R², leave-one-run-out R² and a bootstrap interval over runs, for points with finite x, y.

    With ``groups`` (one label per point, constant within a run; e.g. the method, named by
    ``group_name``) the out-of-sample R² holds out a whole group at a time instead of a run; the bootstrap
    still resamples runs. Below ``MIN_POINTS_FOR_R2`` points only the in-sample R² is computed, and the
    result is flagged not meaningful. No out-of-sample fit is attempted, so a quickstart with one run does
    not error. At or above it, fewer than 2 runs (groups) is a ``UserError``.
    """
    xa, ya = _xy(x, y)
    labels = np.asarray(runs)
    group_labels = _groups_of(groups, labels)
    ok = _finite(xa, ya)
    xa, ya, labels = xa[ok], ya[ok], labels[ok]
    if group_labels is not None:
        group_labels = group_labels[ok]
    held_out = "run" if group_labels is None else group_name
    n = int(xa.size)
    r2_in = in_sample_r2(xa, ya, kind) if n else float("nan")
    if not r2_meaningful(n):
        nan = float("nan")
        return PredictorAssessment(kind, n, _n_runs(labels), False, r2_in, nan, interval_of, None, held_out)
    r2_oos = leave_one_run_out_r2(xa, ya, labels if group_labels is None else group_labels, kind)
    interval = bootstrap_r2(
        xa,
        ya,
        labels,
        kind,
        statistic=interval_of,
        bootstrap=bootstrap,
        groups=group_labels,
    )
    return PredictorAssessment(kind, n, _n_runs(labels), True, r2_in, r2_oos, interval_of, interval, held_out)


@dataclass(frozen=True)
class PredictorComparison:
    """R²(A) - R²(B) on the same points, with a bootstrap interval from the same run-resamples."""

    statistic: Statistic
    kind: FitKind
    n: int
    meaningful: bool
    r2_a: float
    r2_b: float
    difference: float  # r2_a - r2_b
    interval: BootstrapInterval | None  # None when not meaningful
    verdict: Verdict  # "A better" / "B better" only when the interval excludes 0


def compare_predictors(
    x_a: ArrayLike,
    x_b: ArrayLike,
    y: ArrayLike,
    runs: ArrayLike,
    kind: FitKind = "quadratic",
    *,
    statistic: Statistic = "loro",
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> PredictorComparison:
    """Is predictor A's R² different from B's? A paired bootstrap over runs of R²(A) - R²(B).

    Both R² are computed on the same resample each time, so the part of the noise that the predictors
    share cancels. Only points where x_a, x_b and y are all finite are used. Verdict: "A better" if the
    interval lies above 0, "B better" if below, and "inconclusive" if it contains 0, if below
    ``MIN_POINTS_FOR_R2`` points (then the interval is not computed), or if no resample was valid.
    """
    xa, ya = _xy(x_a, y)
    xb, _ = _xy(x_b, y)
    labels = np.asarray(runs)
    ok = _finite(xa, xb, ya)
    xa, xb, ya, labels = xa[ok], xb[ok], ya[ok], labels[ok]
    n = int(ya.size)
    if not r2_meaningful(n):
        nan = float("nan")
        return PredictorComparison(statistic, kind, n, False, nan, nan, nan, None, "inconclusive")
    if statistic == "loro":
        _require_runs(labels, n)
    r2_a = _r2(xa, ya, labels, kind, statistic)
    r2_b = _r2(xb, ya, labels, kind, statistic)
    codes = label_codes(labels)  # as in bootstrap_r2, so the memo finds the fits its intervals made
    diffs = [
        _r2(xa[idx], ya[idx], codes[idx], kind, statistic)
        - _r2(xb[idx], ya[idx], codes[idx], kind, statistic)
        for idx in bootstrap.run_indices(codes)
    ]
    interval = bootstrap.interval(diffs)
    verdict: Verdict = "inconclusive"
    if interval.n_valid and interval.low > 0:
        verdict = "A better"
    elif interval.n_valid and interval.high < 0:
        verdict = "B better"
    return PredictorComparison(statistic, kind, n, True, r2_a, r2_b, r2_a - r2_b, interval, verdict)
