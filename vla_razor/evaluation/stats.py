"""Honest uncertainty for the RL's Razor study: success intervals, paired forgetting, clustered KL errors,
and the bootstrap over training runs that the other statistics modules share.

How the study uses the statistics layer (``stats``, ``predictor_fits``, ``frontier``, ``forecast``):

- Success of a policy on a task (k successes in n held-out episodes) is reported with a Wilson score
  interval (``wilson_interval``; ``clopper_pearson_interval`` where an exact, conservative one is wanted),
  never as p ± 0 at 0% or 100%.
- Forgetting is pi0's prior-skill success minus the checkpoint's. Both are scored on the same seeds, so each
  prior task gets a paired difference over seeds (``paired_difference``), and ``paired_forgetting``
  averages these over the prior tasks.
- A divergence averaged over cached states (e.g. 256 states taken from 8 pi0 episodes) gets a standard error
  clustered by episode (``clustered_mean``), because the states of one episode are not independent.
- ``predictor_fits`` builds the predictors table (RL's Razor Table 1). For each candidate predictor of
  forgetting it gives the in-sample and leave-one-run-out R² of quadratic and monotone fits, bootstrap
  intervals over runs, and which differences between predictors are significant. Below 10 points it
  reports "not meaningful".
- ``frontier`` builds the matched-success comparison: each method's Pareto frontier of (new-task success,
  mean prior-skill success), the checkpoints within 2 points of it, and prior-skill success interpolated at
  matched new-task success, with intervals over runs.
- ``forecast`` fits forgetting against forward KL on evaluated checkpoints. It predicts a new checkpoint's
  forgetting from its KL alone with a prediction interval, and checks that interval by leave-one-run-out
  coverage.

Every bootstrap here resamples whole training runs, never single points. Checkpoints of one run share one
trajectory, so treating them as independent would make the intervals too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri  # scipy is a declared dependency (and one of robosuite's)
from scipy.stats import binomtest

# Forgetting is pi0's prior-skill success minus the checkpoint's: a difference of two rates in [0, 1].
FORGETTING_RANGE = (-1.0, 1.0)

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]
LabelArray = NDArray[Any]  # run ids (str or int), one per point


def labelled_points(
    x: ArrayLike, y: ArrayLike, labels: ArrayLike, names: tuple[str, str, str]
) -> tuple[FloatArray, FloatArray, LabelArray]:
    """``x`` and ``y`` as float arrays and ``labels`` (run or group ids) as an array, checked to be 1-D
    and of one length; ``names`` names the three in the error (e.g. ("kl", "forgetting", "runs"))."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    la = np.asarray(labels)
    if xa.ndim != 1 or xa.shape != ya.shape or la.shape != xa.shape:
        raise ValueError(
            f"{names[0]}, {names[1]} and {names[2]} must be 1-D of equal length, "
            f"got {xa.shape}, {ya.shape}, {la.shape}"
        )
    return xa, ya, la


def label_codes(labels: ArrayLike) -> NDArray[np.intp]:
    """Labels (run or group ids) as integers in the labels' own sorted order.

    Folds and resamples come out the same, in the same order, so every number does too; but a
    bootstrap's hundred thousand ``np.unique`` calls then sort integers instead of strings."""
    la = np.asarray(labels)
    return np.unique(la, return_inverse=True)[1].reshape(la.shape)


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")


def normal_quantile(confidence: float) -> float:
    """z such that a standard normal lies in [-z, z] with probability ``confidence`` (1.96 for 0.95)."""
    check_confidence(confidence)
    return float(ndtri(0.5 + confidence / 2.0))


# ---------------------------------------------------------------------------------------------------------
# Success rates
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProportionInterval:
    """A success rate k/n with a two-sided confidence interval [low, high] inside [0, 1]."""

    k: int
    n: int
    low: float
    high: float
    confidence: float
    method: Literal["wilson", "clopper-pearson"]

    @property
    def rate(self) -> float:
        return self.k / self.n


def _check_counts(k: int, n: int) -> None:
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"a success count needs 0 <= k <= n and n > 0, got k={k}, n={n}")


def _scipy_interval(
    k: int, n: int, confidence: float, method: Literal["wilson", "clopper-pearson"]
) -> ProportionInterval:
    """The interval from ``scipy.stats.binomtest(k, n).proportion_ci``: scipy does the arithmetic, so the
    project keeps no copy of it (the tests still check it against values worked out by hand)."""
    _check_counts(k, n)
    check_confidence(confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method=_SCIPY_CI[method])
    # At k = 0 or k = n one end is exactly 0 or 1 in exact arithmetic; pin it so rounding never leaves 1e-17.
    low = 0.0 if k == 0 else max(0.0, float(ci.low))
    high = 1.0 if k == n else min(1.0, float(ci.high))
    return ProportionInterval(k, n, low, high, confidence, method)


# Our names for the intervals -> scipy's ``proportion_ci`` methods.
_SCIPY_CI = {"wilson": "wilson", "clopper-pearson": "exact"}


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> ProportionInterval:
    """Wilson score interval for a binomial success rate p = k/n (computed by scipy).

    It is the set of p that the score test |p̂ - p| <= z sqrt(p(1-p)/n) accepts, with z the standard-normal
    quantile at (1 + confidence)/2 and p̂ = k/n:

        center = (p̂ + z²/(2n)) / (1 + z²/n),   half = z / (1 + z²/n) · sqrt(p̂(1-p̂)/n + z²/(4n²)).

    At k = 0 it is [0, z²/(n + z²)] and at k = n it is [n/(n + z²), 1], so it never has zero width.
    Its coverage stays close to nominal even for small n (Brown, Cai & DasGupta 2001).
    """
    return _scipy_interval(k, n, confidence, "wilson")


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> ProportionInterval:
    """Clopper–Pearson ("exact") interval: inverts two one-sided binomial tests, each at level α/2
    (computed by scipy).

    low = Beta quantile(α/2; k, n - k + 1) (0 when k = 0), high = Beta quantile(1 - α/2; k + 1, n - k)
    (1 when k = n), with α = 1 - confidence. Its coverage is at least nominal, so it is wider than Wilson.
    At k = 0 the upper end is 1 - (α/2)^(1/n).
    """
    return _scipy_interval(k, n, confidence, "clopper-pearson")


# ---------------------------------------------------------------------------------------------------------
# Paired forgetting
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """Success of the base policy minus another's, both on the same n seeds (forgetting when base = pi0)."""

    n: int
    base_rate: float
    other_rate: float
    difference: float  # base_rate - other_rate = mean over seeds of (base success - other success)
    se: float  # sd of the per-seed differences (ddof=1) / sqrt(n); NaN when n < 2
    low: float  # Newcombe's paired score interval (see paired_difference)
    high: float
    confidence: float


def paired_difference(base: ArrayLike, other: ArrayLike, confidence: float = 0.95) -> PairedDifference:
    """Difference of two success rates measured on the SAME seeds (``base[i]`` and ``other[i]`` share seed i).

    The standard error uses the per-seed differences d_i = base_i - other_i: se = sd(d, ddof=1) / sqrt(n).
    Pairing removes the between-seed variance that both policies share (an easy seed is easy for both),
    so this SE is usually smaller than the unpaired sqrt(se_base² + se_other²).

    When every seed agrees (for example both policies at 100%), the SE is 0 although the data cannot rule
    out a small difference. The interval is therefore Newcombe's (1998) square-and-add score interval for
    paired binary data, without continuity correction. With a, b, c, d the numbers of seeds that both
    policies pass, only base passes, only other passes, and neither passes, [l1, u1] and [l2, u2] the
    Wilson intervals of p1 = (a+b)/n and p2 = (a+c)/n, and the pairing correlation
    phi = (ad - bc) / sqrt((a+b)(c+d)(a+c)(b+d)) (0 when a margin is 0):

        low  = D - sqrt((p1-l1)² - 2 phi (p1-l1)(u2-p2) + (u2-p2)²)
        high = D + sqrt((u1-p1)² - 2 phi (u1-p1)(p2-l2) + (p2-l2)²),    D = p1 - p2.

    It never has zero width.
    """
    check_confidence(confidence)
    b_arr = np.asarray(base, dtype=np.float64)
    o_arr = np.asarray(other, dtype=np.float64)
    if b_arr.shape != o_arr.shape or b_arr.ndim != 1 or b_arr.size == 0:
        raise ValueError(
            f"paired outcomes need two 1-D arrays of equal, non-zero length, got {b_arr.shape} and {o_arr.shape}"
        )
    if not (np.isin(b_arr, (0.0, 1.0)).all() and np.isin(o_arr, (0.0, 1.0)).all()):
        raise ValueError("paired outcomes must be binary successes (0/1 or bool)")
    n = int(b_arr.size)
    d = b_arr - o_arr
    se = float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    a = int(np.sum((b_arr == 1) & (o_arr == 1)))
    only_base = int(np.sum((b_arr == 1) & (o_arr == 0)))
    only_other = int(np.sum((b_arr == 0) & (o_arr == 1)))
    neither = n - a - only_base - only_other
    p1, p2 = (a + only_base) / n, (a + only_other) / n
    w1 = wilson_interval(a + only_base, n, confidence)
    w2 = wilson_interval(a + only_other, n, confidence)
    margins = (a + only_base) * (only_other + neither) * (a + only_other) * (only_base + neither)
    phi = 0.0 if margins == 0 else (a * neither - only_base * only_other) / math.sqrt(margins)
    delta = math.sqrt(
        max(0.0, (p1 - w1.low) ** 2 - 2 * phi * (p1 - w1.low) * (w2.high - p2) + (w2.high - p2) ** 2)
    )
    eps = math.sqrt(
        max(0.0, (w1.high - p1) ** 2 - 2 * phi * (w1.high - p1) * (p2 - w2.low) + (p2 - w2.low) ** 2)
    )
    diff = p1 - p2
    return PairedDifference(n, p1, p2, diff, se, max(-1.0, diff - delta), min(1.0, diff + eps), confidence)


@dataclass(frozen=True)
class PairedForgetting:
    """Forgetting per prior task (paired over seeds) and its mean over the prior tasks."""

    per_task: dict[str, PairedDifference]
    mean: float  # mean over tasks of (pi0 success - checkpoint success)
    se: float  # sqrt(sum of per-task se²) / number of tasks (tasks independent)


def paired_forgetting(
    pi0: Mapping[str, Mapping[int, bool]],
    checkpoint: Mapping[str, Mapping[int, bool]],
    tasks: Sequence[str],
    confidence: float = 0.95,
) -> PairedForgetting:
    """Forgetting of ``checkpoint`` relative to ``pi0`` on the prior ``tasks``: each maps task -> seed -> success.

    For each task, the outcomes are aligned by seed and ``paired_difference`` is taken (pi0 minus
    checkpoint). The mean over K tasks has se = sqrt(Σ_t se_t²) / K. Different tasks are different
    environments, and a seed number shared by two tasks gives unrelated episodes, so the per-task
    estimates are treated as independent.
    """
    if not tasks:
        raise ValueError("paired forgetting needs at least one prior task")
    per_task: dict[str, PairedDifference] = {}
    for task in tasks:
        ref, mine = pi0[task], checkpoint[task]
        if set(ref) != set(mine):
            missing = sorted(set(ref) ^ set(mine))
            raise ValueError(
                f"task {task!r}: pi0 and the checkpoint must be scored on the same seeds; "
                f"seeds in only one of them: {missing[:10]}"
            )
        seeds = sorted(ref)
        per_task[task] = paired_difference([ref[s] for s in seeds], [mine[s] for s in seeds], confidence)
    k = len(tasks)
    mean = float(np.mean([d.difference for d in per_task.values()]))
    se = math.sqrt(sum(d.se**2 for d in per_task.values())) / k
    return PairedForgetting(per_task, mean, se)


# ---------------------------------------------------------------------------------------------------------
# Clustered standard error (states within episodes)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusteredMean:
    """Mean of per-state values with a standard error that is robust to correlation within clusters."""

    mean: float
    se: float  # NaN with fewer than 2 clusters
    n: int
    n_clusters: int
    method: Literal["CR0", "CR1"]


def clustered_mean(values: ArrayLike, clusters: ArrayLike, small_sample: bool = True) -> ClusteredMean:
    """Mean of ``values`` (e.g. KL per state) and its cluster-robust SE, clustered by ``clusters`` (episode).

    This is the sandwich estimator for a regression on a constant. With N values, mean ȳ, G clusters and
    S_g = Σ_{i in g} (y_i - ȳ), the sum of residuals in cluster g:

        CR0:  se² = Σ_g S_g² / N²
        CR1:  se² = G / (G - 1) · Σ_g S_g² / N²      (default: CR0 is biased down with few clusters)

    With equal cluster sizes, CR1 equals the naive SE of the G cluster means, sd(means, ddof=1) / sqrt(G).
    So 256 states from 8 episodes carry about as much information as 8 numbers, not 256. With unequal
    sizes, CR1 keeps the state-weighted mean that the study reports.
    """
    y = np.asarray(values, dtype=np.float64)
    g = np.asarray(clusters)
    if y.ndim != 1 or g.shape != y.shape or y.size == 0:
        raise ValueError(
            f"values and clusters must be 1-D of equal, non-zero length, got {y.shape} and {g.shape}"
        )
    if not np.isfinite(y).all():
        raise ValueError("values must be finite")
    _, cluster_index = np.unique(g, return_inverse=True)
    n_clusters = int(cluster_index.max()) + 1
    n = int(y.size)
    mean = float(y.mean())
    sums = np.bincount(cluster_index, weights=y - mean, minlength=n_clusters)
    method: Literal["CR0", "CR1"] = "CR1" if small_sample else "CR0"
    if n_clusters < 2:
        return ClusteredMean(mean, float("nan"), n, n_clusters, method)
    var = float(np.sum(sums**2)) / n**2
    if small_sample:
        var *= n_clusters / (n_clusters - 1)
    return ClusteredMean(mean, math.sqrt(var), n, n_clusters, method)


# ---------------------------------------------------------------------------------------------------------
# Bootstrap over training runs (shared by predictor_fits, frontier)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapInterval:
    """Percentile interval of a statistic over run-resamples; resamples where it is undefined are dropped."""

    low: float
    high: float
    n_valid: int  # resamples where the statistic was finite
    n_boot: int
    confidence: float


def bootstrap_run_indices(runs: ArrayLike, n_boot: int, seed: int) -> Iterator[IndexArray]:
    """Index arrays into the points, one per cluster-bootstrap resample of the training runs.

    Each resample draws G runs with replacement from the G distinct runs, using
    ``numpy.random.default_rng(seed)``, so the same seed gives the same resamples. It takes all points of
    every drawn run, and a run drawn twice contributes its points twice. ``runs[idx]`` keeps the original
    run ids, so a leave-one-run-out inside a resample holds out all copies of a run together; otherwise a
    copy would leak into its own training set.
    """
    if n_boot <= 0:
        raise ValueError(f"n_boot must be > 0, got {n_boot}")
    labels = np.asarray(runs)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError("runs must be a non-empty 1-D sequence of run ids, one per point")
    _, inverse = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(inverse == r) for r in range(int(inverse.max()) + 1)]
    draws = np.random.default_rng(seed).integers(0, len(members), size=(n_boot, len(members)))
    for row in draws:
        yield np.concatenate([members[r] for r in row])


def percentile_interval(values: ArrayLike, confidence: float) -> BootstrapInterval:
    """Percentile bootstrap interval: the (1-c)/2 and (1+c)/2 quantiles of the finite ``values``."""
    check_confidence(confidence)
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    total = int(v.size)
    if finite.size == 0:
        return BootstrapInterval(float("nan"), float("nan"), 0, total, confidence)
    low, high = np.quantile(finite, [(1 - confidence) / 2, (1 + confidence) / 2])
    return BootstrapInterval(float(low), float(high), int(finite.size), total, confidence)


def stratified_run_indices(
    runs: ArrayLike, strata: ArrayLike, n_boot: int, seed: int
) -> Iterator[IndexArray]:
    """Like ``bootstrap_run_indices``, but each resample draws runs within each stratum (e.g. the method):
    a stratum of G runs contributes G runs drawn with replacement from its own.

    A statistic that compares or removes the strata (R² of the method label, a slope within methods) needs
    every stratum in every resample, with its number of runs; an unstratified draw can leave a method out.
    """
    if n_boot <= 0:
        raise ValueError(f"n_boot must be > 0, got {n_boot}")
    labels = np.asarray(runs)
    groups = np.asarray(strata)
    if labels.ndim != 1 or labels.size == 0 or groups.shape != labels.shape:
        raise ValueError("runs and strata must be non-empty 1-D sequences, one label each per point")
    rng = np.random.default_rng(seed)
    members = {
        str(g): [np.flatnonzero(labels == r) for r in np.unique(labels[groups == g])]
        for g in np.unique(groups)
    }
    for _ in range(n_boot):
        picked: list[IndexArray] = []
        for runs_of_group in members.values():
            for r in rng.integers(0, len(runs_of_group), size=len(runs_of_group)):
                picked.append(runs_of_group[r])
        yield np.concatenate(picked)


@dataclass(frozen=True)
class Bootstrap:
    """How a run bootstrap draws and reports: ``n_boot`` resamples from ``default_rng(seed)``, and the
    percentile interval at ``confidence``.

    Every statistic with a run-resampled interval (``predictor_fits``, ``frontier``, ``method_identity``,
    ``method_transfer``) takes one of these instead of its own three keywords, so the study's defaults
    (1000 resamples, 95%, seed 0) live here once.
    """

    n_boot: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def run_indices(self, runs: ArrayLike) -> Iterator[IndexArray]:
        """``bootstrap_run_indices`` with these settings."""
        return bootstrap_run_indices(runs, self.n_boot, self.seed)

    def stratified_indices(self, runs: ArrayLike, strata: ArrayLike) -> Iterator[IndexArray]:
        """``stratified_run_indices`` with these settings."""
        return stratified_run_indices(runs, strata, self.n_boot, self.seed)

    def interval(self, values: ArrayLike) -> BootstrapInterval:
        """``percentile_interval`` of the resamples' ``values`` at this confidence."""
        return percentile_interval(values, self.confidence)


# The study's bootstrap: the default of every function that takes a ``Bootstrap``.
DEFAULT_BOOTSTRAP = Bootstrap()
