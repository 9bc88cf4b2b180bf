"""The matched-success comparison of RL's Razor: Pareto frontiers of (new-task success, prior-skill success).

RL's Razor claims that RL forgets less than SFT *at equal new-task success*. Following the paper, the
frontier is built for each method separately from that method's checkpoints (the caller may add pi0 to
each method's set as its common starting point). The checkpoints within 2 points of the frontier are
kept. The methods are then compared by the prior-skill success their frontier reaches at the same
new-task success levels, with bootstrap intervals that resample the method's training runs.

Success rates are fractions in [0, 1], so "2 points" is ``tolerance=0.02``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from vla_razor.evaluation.stats import (
    DEFAULT_BOOTSTRAP,
    BoolArray,
    Bootstrap,
    BootstrapInterval,
    FloatArray,
    IndexArray,
)

# Success rates are k/n; a difference of exactly 0.02 must count as "within 2 points" despite rounding.
_EPS = 1e-9


def _pair(new: ArrayLike, prior: ArrayLike) -> tuple[FloatArray, FloatArray]:
    s = np.asarray(new, dtype=np.float64)
    p = np.asarray(prior, dtype=np.float64)
    if s.shape != p.shape or s.ndim != 1:
        raise ValueError(f"new and prior must be 1-D arrays of equal length, got {s.shape} and {p.shape}")
    if not (np.isfinite(s).all() and np.isfinite(p).all()):
        raise ValueError("success rates must be finite")
    return s, p


def pareto_frontier(new: ArrayLike, prior: ArrayLike) -> IndexArray:
    """Indices of the Pareto-optimal points (higher is better on both axes), sorted by new-task success.

    A point is on the frontier when no other point is at least as good on both axes and better on one.
    Exact duplicates appear once. Along the frontier, new-task success strictly increases and prior-skill
    success strictly decreases.
    """
    s, p = _pair(new, prior)
    # Sweep from the highest new-task success down: a point is undominated iff its prior success beats
    # every point with at least its new-task success (ties in new-task success: best prior comes first).
    order = np.lexsort((-p, -s))
    kept: list[int] = []
    best = -np.inf
    for i in order:
        if p[i] > best:
            kept.append(int(i))
            best = p[i]
    return np.array(kept[::-1], dtype=np.intp)


def near_frontier(new: ArrayLike, prior: ArrayLike, tolerance: float = 0.02) -> BoolArray:
    """Mask of points within ``tolerance`` of the Pareto frontier (the paper keeps models within 2 points).

    Additive epsilon-dominance: point q is kept unless some point r dominates q shifted by
    ``tolerance`` on both axes, that is, r_new >= q_new + tol and r_prior >= q_prior + tol, with at least
    one strict. So a point is dropped only if another checkpoint beats it by more than ``tolerance`` on one
    axis and by at least ``tolerance`` on the other. With tolerance 0 this is exactly the frontier
    (duplicates included).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    s, p = _pair(new, prior)
    ds = s[None, :] - (s[:, None] + tolerance)  # [q, r]: how far r is beyond q's shifted point
    dp = p[None, :] - (p[:, None] + tolerance)
    dominated = (ds >= -_EPS) & (dp >= -_EPS) & ((ds > _EPS) | (dp > _EPS))
    kept: BoolArray = ~dominated.any(axis=1)
    return kept


def frontier_prior_at(new: ArrayLike, prior: ArrayLike, levels: ArrayLike) -> FloatArray:
    """Prior-skill success on the frontier at each new-task success level.

    The value is interpolated linearly between consecutive frontier points (a mixture of two checkpoints
    reaches any point between them). Below the frontier's lowest new-task success it is that first point's
    prior success: that checkpoint reaches at least the level, and keeps the most prior skill of all that
    do. Above the frontier's highest new-task success it is NaN: no checkpoint reached the level, and
    extrapolating a frontier has no support in the data. A scalar level gives a 1-element array.
    """
    s, p = _pair(new, prior)
    at = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if s.size == 0:
        return np.full(at.shape, np.nan)
    idx = pareto_frontier(s, p)
    fs, fp = s[idx], p[idx]
    out = np.interp(at, fs, fp)  # held at fp[0] below fs[0]
    out[at > fs[-1] + _EPS] = np.nan
    return out


def levels_all_reach(
    frontiers: Sequence[tuple[ArrayLike, ArrayLike]], levels: ArrayLike, *, above: float = -np.inf
) -> tuple[float, ...]:
    """The levels (sorted, unique) above ``above`` that every (new, prior) frontier reaches.

    A comparison of methods at matched new-task success needs each method's frontier at each level;
    ``above`` is pi0's own new-task success, where anchored frontiers all start from pi0 and a gap says
    nothing about fine-tuning."""
    at = sorted({float(v) for v in np.atleast_1d(np.asarray(levels, dtype=np.float64))})
    return tuple(
        level
        for level in at
        if level > above
        and all(np.isfinite(frontier_prior_at(new, prior, level)[0]) for new, prior in frontiers)
    )


@dataclass(frozen=True)
class MatchedPrior:
    """A method's frontier prior-skill success at matched new-task success levels, with run-bootstrap CIs."""

    levels: tuple[float, ...]
    prior: tuple[float, ...]  # on all points; NaN where the level is outside the frontier's range
    intervals: tuple[BootstrapInterval, ...]  # one per level; n_valid counts resamples covering the level


def matched_prior_success(
    new: ArrayLike,
    prior: ArrayLike,
    runs: ArrayLike,
    levels: ArrayLike,
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    anchor: tuple[float, float] | None = None,
) -> MatchedPrior:
    """``frontier_prior_at`` on one method's checkpoints, with a percentile bootstrap resampling its runs.

    Each resample rebuilds the frontier from the checkpoints of the drawn runs and interpolates it again.
    A resample whose frontier does not reach a level contributes nothing at that level, and ``n_valid``
    reports how many resamples did. An interval built from few valid resamples is fragile.

    ``anchor`` is a (new, prior) point every method reaches without training (pi0's own): it joins the
    frontier of the estimate and of every resample, never resampled itself. Without it, a method whose
    latest checkpoint dominates its earlier ones has a one-point frontier and no level is matched.
    """
    s, p = _pair(new, prior)
    labels = np.asarray(runs)
    if labels.shape != s.shape:
        raise ValueError(f"runs must give one run id per point ({s.size}), got shape {labels.shape}")
    at = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    extra_s = np.array([] if anchor is None else [float(anchor[0])])
    extra_p = np.array([] if anchor is None else [float(anchor[1])])

    def at_levels(idx: IndexArray) -> FloatArray:
        return frontier_prior_at(np.concatenate([s[idx], extra_s]), np.concatenate([p[idx], extra_p]), at)

    estimate = at_levels(np.arange(s.size))
    draws = np.array([at_levels(idx) for idx in bootstrap.run_indices(labels)])
    intervals = tuple(bootstrap.interval(draws[:, j]) for j in range(at.size))
    return MatchedPrior(tuple(float(v) for v in at), tuple(float(v) for v in estimate), intervals)


@dataclass(frozen=True)
class MatchedGap:
    """Method A's frontier prior-skill success minus method B's at matched new-task success levels."""

    levels: tuple[float, ...]
    gap: tuple[float, ...]  # NaN where either frontier does not reach the level
    intervals: tuple[BootstrapInterval, ...]  # one per level; n_valid counts resamples where both reach it


def matched_prior_gap(
    a: tuple[ArrayLike, ArrayLike, ArrayLike],
    b: tuple[ArrayLike, ArrayLike, ArrayLike],
    levels: ArrayLike,
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    anchor: tuple[float, float] | None = None,
) -> MatchedGap:
    """``frontier_prior_at`` of method A minus method B, each given as (new, prior, runs), with an interval.

    Two per-method intervals that do not overlap is a stricter test than an interval of the difference,
    so the gap gets its own bootstrap. Each resample draws A's runs from A's and B's from B's (stratified),
    so both methods keep their number of runs in every resample, and rebuilds both frontiers (``anchor``
    joins each, as in ``matched_prior_success``)."""
    (sa, pa), (sb, pb) = _pair(*a[:2]), _pair(*b[:2])
    runs_a, runs_b = np.asarray(a[2]).astype(str), np.asarray(b[2]).astype(str)
    if runs_a.shape != sa.shape or runs_b.shape != sb.shape:
        raise ValueError("each method needs one run id per point")
    new, prior = np.concatenate([sa, sb]), np.concatenate([pa, pb])
    side = np.array(["a"] * sa.size + ["b"] * sb.size)
    # Prefixed so that a run id shared by the two methods still names two runs.
    runs = np.char.add(np.char.add(side, ":"), np.concatenate([runs_a, runs_b]))
    at = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    extra_s = np.array([] if anchor is None else [float(anchor[0])])
    extra_p = np.array([] if anchor is None else [float(anchor[1])])

    def one_side(idx: IndexArray) -> FloatArray:
        return frontier_prior_at(
            np.concatenate([new[idx], extra_s]), np.concatenate([prior[idx], extra_p]), at
        )

    def gap(idx: IndexArray) -> FloatArray:
        return one_side(idx[side[idx] == "a"]) - one_side(idx[side[idx] == "b"])

    estimate = gap(np.arange(new.size))
    draws = np.array([gap(idx) for idx in bootstrap.stratified_indices(runs, side)])
    intervals = tuple(bootstrap.interval(draws[:, j]) for j in range(at.size))
    return MatchedGap(tuple(float(v) for v in at), tuple(float(v) for v in estimate), intervals)
