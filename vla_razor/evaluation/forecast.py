"""Forecast a checkpoint's forgetting from its forward KL(pi0‖pi) on new-task states alone.

RL's Razor's practical promise is that KL on the NEW task predicts forgetting of OLD skills, so no old-task
data is needed. The workflow:

1. ``calibrate_forecast`` fits forgetting = poly(KL) by ordinary least squares on checkpoints already
   evaluated on the suite. It returns a ``Calibration`` (JSON-serialisable via ``to_dict``/``from_dict``)
   tied to the suite name and to pi0's content hash.
2. ``forecast_forgetting`` predicts a new checkpoint's forgetting from its KL, with a prediction interval
   (90% by default). A trainer can log this during training, and a KL budget can act on it.
3. ``validate_forecast`` checks the interval honestly by leave-one-run-out. Each run's checkpoints are
   forecast from a calibration that never saw the run. It reports the coverage of the intervals (target:
   at least 80% for 90% intervals) and the mean absolute error.

The interval is the classical OLS prediction interval with a Student-t quantile:

    ŷ(x0) ± t_{(1+c)/2, n-p} · s · sqrt(1 + x0ᵀ (XᵀX)⁻¹ x0),   s² = SS_res / (n - p),

where X has columns (x^d, ..., x, 1), p = d + 1 and x0 = (x0^d, ..., 1). It is exact for independent
Gaussian errors around a correct polynomial. Checkpoints of one run are correlated and the noise grows
with KL, so the leave-one-run-out coverage is the real check, not the formula.

Forgetting is a difference of two success rates, so it lies in [-1, 1]. The point forecast and both ends
of the interval are clipped to that range: a polynomial extrapolated far past the calibrated KL can
leave it, and clipping can only move a forecast closer to the truth, never lower an interval's coverage.
Forecasts outside the calibrated KL range are flagged, and the validation scores them apart from the
forecasts inside it, since an extrapolated curve is a guess the calibration cannot vouch for.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import stdtrit

from vla_razor.errors import BadInputError, MissingFileError, UserError
from vla_razor.evaluation.identity import short_hash
from vla_razor.evaluation.stats import (
    FORGETTING_RANGE,
    BoolArray,
    FloatArray,
    LabelArray,
    check_confidence,
    labelled_points,
)
from vla_razor.io_utils import write_json_atomic

DEGREES = (1, 2)


@dataclass(frozen=True)
class Calibration:
    """A fitted forgetting-vs-KL curve and what the prediction interval needs, for one suite and one pi0."""

    suite: str  # suite name the checkpoints were evaluated on
    pi0_hash: str  # content hash of pi0, as a plain string
    predictor: str  # e.g. "forward_kl"
    degree: int
    coefficients: tuple[float, ...]  # highest degree first (numpy.polyval order)
    covariance_unscaled: tuple[tuple[float, ...], ...]  # (XᵀX)⁻¹, same order as the coefficients
    residual_scale: float  # s = sqrt(SS_res / (n - degree - 1))
    n: int
    n_runs: int
    x_min: float  # KL range seen in calibration; forecasts outside it are extrapolations
    x_max: float
    new_task: str = ""  # the suite's new task: a trainer forecasts only runs on that task ("" = unchecked)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["coefficients"] = list(self.coefficients)
        d["covariance_unscaled"] = [list(row) for row in self.covariance_unscaled]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        names = [f.name for f in fields(cls)]
        missing = [k for k in names if k not in data and k != "new_task"]
        unknown = [k for k in data if k not in names]
        if missing or unknown:
            raise UserError(
                f"not a forecast calibration: missing keys {missing}, unknown keys {unknown}; "
                f"expected exactly: {', '.join(names)}"
            )
        return cls(
            suite=str(data["suite"]),
            pi0_hash=str(data["pi0_hash"]),
            predictor=str(data["predictor"]),
            degree=int(data["degree"]),
            coefficients=tuple(float(c) for c in data["coefficients"]),
            covariance_unscaled=tuple(tuple(float(v) for v in row) for row in data["covariance_unscaled"]),
            residual_scale=float(data["residual_scale"]),
            n=int(data["n"]),
            n_runs=int(data["n_runs"]),
            x_min=float(data["x_min"]),
            x_max=float(data["x_max"]),
            new_task=str(data.get("new_task", "")),
        )


@dataclass(frozen=True)
class _OLS:
    coefficients: FloatArray
    covariance_unscaled: FloatArray
    residual_scale: float
    n: int


def _fit_ols(x: FloatArray, y: FloatArray, degree: int) -> _OLS | None:
    """OLS polynomial fit with (XᵀX)⁻¹; None when it leaves no residual degree of freedom."""
    p = degree + 1
    if x.size <= p or np.unique(x).size < p:
        return None
    design = np.vander(x, p)
    # QR instead of inverting XᵀX: XᵀX = RᵀR, so (XᵀX)⁻¹ = R⁻¹R⁻ᵀ, without squaring the condition number.
    q, r = np.linalg.qr(design)
    coefficients = np.linalg.solve(r, q.T @ y)
    r_inv: FloatArray = np.linalg.inv(r)
    residual = y - design @ coefficients
    scale = math.sqrt(float(residual @ residual) / (x.size - p))
    cov: FloatArray = r_inv @ r_inv.T
    return _OLS(coefficients, cov, scale, int(x.size))


def _predict(
    coefficients: FloatArray, cov: FloatArray, scale: float, n: int, x0: FloatArray, confidence: float
) -> tuple[FloatArray, FloatArray]:
    """Point forecast and half-width of the OLS prediction interval at x0 (see the module docstring)."""
    p = coefficients.size
    rows = np.vander(np.atleast_1d(x0), p)
    mean = rows @ coefficients
    leverage = np.einsum("ij,jk,ik->i", rows, cov, rows)
    t = float(stdtrit(n - p, 0.5 + confidence / 2))
    return mean, t * scale * np.sqrt(1.0 + leverage)


def _bounded(mean: FloatArray, half: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Point forecast, low and high clipped to the range forgetting can take (see the module docstring)."""
    lo, hi = FORGETTING_RANGE
    return np.clip(mean, lo, hi), np.clip(mean - half, lo, hi), np.clip(mean + half, lo, hi)


def _arrays(
    kl: ArrayLike, forgetting: ArrayLike, runs: ArrayLike
) -> tuple[FloatArray, FloatArray, LabelArray]:
    x, y, labels = labelled_points(kl, forgetting, runs, ("kl", "forgetting", "runs"))
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("kl and forgetting must be finite (drop checkpoints without a KL measurement)")
    return x, y, labels


def _check_degree(degree: int) -> None:
    if degree not in DEGREES:
        raise UserError(f"forecast degree must be one of {DEGREES} (linear or quadratic), got {degree}")


def calibrate_forecast(
    kl: ArrayLike,
    forgetting: ArrayLike,
    runs: ArrayLike,
    *,
    suite: str,
    pi0_hash: str,
    degree: int = 2,
    predictor: str = "forward_kl",
    new_task: str = "",
) -> Calibration:
    """Fit forgetting = poly_degree(KL) by OLS on evaluated checkpoints (quadratic by default, like the study).

    It needs at least degree + 2 checkpoints with at least degree + 1 distinct KL values, so that the
    residual scale has a degree of freedom. Otherwise it raises a ``UserError``.
    """
    _check_degree(degree)
    x, y, labels = _arrays(kl, forgetting, runs)
    fit = _fit_ols(x, y, degree)
    if fit is None:
        raise UserError(
            f"a degree-{degree} forecast calibration needs at least {degree + 2} evaluated checkpoints with "
            f"{degree + 1} distinct KL values, got {x.size} with {np.unique(x).size} distinct"
        )
    return Calibration(
        suite=suite,
        pi0_hash=pi0_hash,
        predictor=predictor,
        degree=degree,
        coefficients=tuple(float(c) for c in fit.coefficients),
        covariance_unscaled=tuple(tuple(float(v) for v in row) for row in fit.covariance_unscaled),
        residual_scale=fit.residual_scale,
        n=fit.n,
        n_runs=int(np.unique(labels).size),
        x_min=float(x.min()),
        x_max=float(x.max()),
        new_task=new_task,
    )


def save_calibration(path: str | Path, calibration: Calibration) -> Path:
    return write_json_atomic(path, calibration.to_dict())


def load_calibration(path: str | Path) -> Calibration:
    """A calibration written by ``vla-razor forecast``; a missing or malformed file is a one-line error."""
    file = Path(path)
    if not file.is_file():
        raise MissingFileError(
            f"forecast calibration {str(file)!r} does not exist; write one with `vla-razor forecast results=DIR`"
        )
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"forecast calibration {str(file)!r} is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise BadInputError(f"forecast calibration {str(file)!r} is not a JSON object")
    return Calibration.from_dict(data)


@dataclass(frozen=True)
class Forecast:
    kl: float
    forgetting: float  # point forecast, clipped to [-1, 1] like the interval
    low: float
    high: float
    confidence: float
    extrapolated: bool  # KL outside the calibration's range: the interval assumes the curve still holds


def check_calibration(
    calibration: Calibration | None, *, suite: str | None, pi0_hash: str, new_task: str | None = None
) -> Calibration:
    """The calibration, if it belongs to this run: same suite (when the caller knows it), same pi0, and the
    same new task (when both name one). Otherwise a one-line ``UserError``: forgetting is only defined
    against the pi0 and the prior skills the curve was measured on."""
    if calibration is None:
        raise UserError(
            "a forgetting forecast needs a calibration: fit one on evaluated checkpoints of this suite and pi0 "
            "(evaluation.forecast.calibrate_forecast) and pass it"
        )
    if new_task and calibration.new_task and calibration.new_task != new_task:
        raise UserError(
            f"the forecast calibration was fitted on suite {calibration.suite!r} whose new task is "
            f"{calibration.new_task!r}, but this run trains on {new_task!r}; calibrate on a suite with this task"
        )
    if (suite is not None and calibration.suite != suite) or calibration.pi0_hash != pi0_hash:
        raise UserError(
            f"the forecast calibration was fitted on suite {calibration.suite!r} with pi0 "
            f"{short_hash(calibration.pi0_hash)!r}, but this run uses suite {suite or calibration.suite!r} with "
            f"pi0 {short_hash(pi0_hash)!r}; calibrate on checkpoints of the same suite and pi0"
        )
    return calibration


def forecast_forgetting(
    calibration: Calibration | None,
    kl: float,
    *,
    suite: str,
    pi0_hash: str,
    confidence: float = 0.9,
) -> Forecast:
    """Forgetting predicted from KL alone, with the OLS prediction interval (see the module docstring).

    ``suite`` and ``pi0_hash`` describe the run asking for the forecast. A missing calibration, or one
    fitted on another suite or another pi0, is a ``UserError``: forgetting is only defined against the
    pi0 and the prior skills the curve was measured on.
    """
    check_calibration(calibration, suite=suite, pi0_hash=pi0_hash)
    check_confidence(confidence)
    if not math.isfinite(kl):
        raise ValueError(f"KL must be finite, got {kl}")
    mean, half = _predict(
        np.array(calibration.coefficients),
        np.array(calibration.covariance_unscaled),
        calibration.residual_scale,
        calibration.n,
        np.array([kl], dtype=np.float64),
        confidence,
    )
    point, low, high = (float(v[0]) for v in _bounded(mean, half))
    extrapolated = not calibration.x_min <= kl <= calibration.x_max
    return Forecast(float(kl), point, low, high, confidence, extrapolated)


@dataclass(frozen=True)
class ForecastScore:
    """How well a set of held-out checkpoints was forecast (NaN figures when the set is empty)."""

    n: int
    coverage: float  # fraction whose forgetting fell inside the interval
    mean_abs_error: float  # mean |forgetting - point forecast|
    mean_width: float  # mean interval width (a coverage bought with huge intervals is no use)

    @classmethod
    def of(cls, inside: BoolArray, errors: FloatArray, widths: FloatArray) -> ForecastScore:
        if inside.size == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(int(inside.size), float(inside.mean()), float(errors.mean()), float(widths.mean()))


@dataclass(frozen=True)
class ForecastValidation:
    """Leave-one-run-out check of the forecast on evaluated checkpoints: every forecast, and apart, those
    whose KL lay inside the range their fold was calibrated on and those extrapolated beyond it."""

    confidence: float
    overall: ForecastScore
    within_range: ForecastScore
    extrapolated: ForecastScore
    n_skipped: int  # checkpoints whose fold had too few other checkpoints to calibrate
    n_runs: int


def validate_forecast(
    kl: ArrayLike,
    forgetting: ArrayLike,
    runs: ArrayLike,
    *,
    degree: int = 2,
    confidence: float = 0.9,
) -> ForecastValidation:
    """Forecast each run's checkpoints from a calibration on all OTHER runs, and score the forecasts.

    Coverage and MAE are pooled over every forecast checkpoint. A fold whose other runs cannot support
    the fit (too few checkpoints or distinct KL values) is skipped and its checkpoints are counted in
    ``n_skipped``. Fewer than 2 runs is a ``UserError``.
    """
    _check_degree(degree)
    check_confidence(confidence)
    x, y, labels = _arrays(kl, forgetting, runs)
    run_ids = np.unique(labels)
    if run_ids.size < 2:
        raise UserError(
            f"leave-one-run-out validation of the forecast needs checkpoints from at least 2 training runs, "
            f"got {run_ids.size}; add runs (another seed or learning rate)"
        )
    # Per held-out checkpoint, fold by fold: inside the interval, absolute error, width, extrapolated.
    inside, errors, widths, outside = [], [], [], []
    skipped = 0
    for run in run_ids:
        held = labels == run
        x_fit = x[~held]
        fit = _fit_ols(x_fit, y[~held], degree)
        if fit is None:
            skipped += int(held.sum())
            continue
        mean, half = _predict(
            fit.coefficients, fit.covariance_unscaled, fit.residual_scale, fit.n, x[held], confidence
        )
        point, low, high = _bounded(mean, half)
        inside.append((low <= y[held]) & (y[held] <= high))
        errors.append(np.abs(y[held] - point))
        widths.append(high - low)
        outside.append((x[held] < x_fit.min()) | (x[held] > x_fit.max()))
    hit, err, width = (np.concatenate(a) if a else np.empty(0) for a in (inside, errors, widths))
    ext = np.concatenate(outside) if outside else np.empty(0, dtype=bool)

    def score(mask: BoolArray) -> ForecastScore:
        return ForecastScore.of(hit[mask].astype(bool), err[mask], width[mask])

    return ForecastValidation(
        confidence=confidence,
        overall=score(np.ones_like(ext)),
        within_range=score(~ext),
        extrapolated=score(ext),
        n_skipped=skipped,
        n_runs=int(run_ids.size),
    )
