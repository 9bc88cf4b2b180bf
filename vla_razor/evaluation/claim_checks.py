"""RL's Razor's claims checked inside one study, for comparing two studies (``replication``).

Each check returns a ``Finding``: the claim's outcome in this study under a stated rule ("holds", "fails",
"unclear", or "untestable" when the study lacks what the claim needs), and the figures it rests on with
their 95% intervals over runs. The figures are the ones the study's report prints, computed by the same
functions (``frontier``, ``method_transfer``, ``predictor_fits``, ``method_identity``) with the same
bootstrap. Two are added, because a rule needs them and the report has neither: the gap between two
methods' matched prior-skill success with its own interval (``frontier.matched_prior_gap``; the report
gives one interval per method), and each held-out method's own leave-one-method-out R²
(``method_transfer.fold_r2``; the report gives its share of the pooled error).

A method is the recorded trainer (``study.study_points``): BC runs at several learning rates are one method,
"bc", and its frontier is the best of its learning rates, as RL's Razor's SFT frontier is over its sweep.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vla_razor.evaluation.frontier import levels_all_reach, matched_prior_gap
from vla_razor.evaluation.method_identity import beyond_label
from vla_razor.evaluation.method_transfer import (
    fold_r2,
    fold_r2_intervals,
    leave_one_group_out,
    transfer_interval,
)
from vla_razor.evaluation.points import Points, method_points, pi0_anchor, pi0_floor
from vla_razor.evaluation.predictor_fits import compare_predictors, r2_meaningful
from vla_razor.evaluation.stats import DEFAULT_BOOTSTRAP, FORGETTING_RANGE, Bootstrap, BootstrapInterval
from vla_razor.evaluation.study import format_r2_difference, matched_success_table, measured_metrics

Outcome = Literal["holds", "fails", "unclear", "untestable"]

RL_METHODS = ("ppo", "rft")
SFT_METHOD = "bc"
MATCHED_METHODS = (*RL_METHODS, SFT_METHOD)  # what the matched-success claim needs; others are shown beside
# A curve "transfers" when its leave-one-method-out R² (clipped forecasts) is at least this: it explains
# half the spread of forgetting for methods it never saw. Fixed before any second study existed.
R2_THRESHOLD = 0.5
FIT = "quadratic"  # RL's Razor's fit, and the one the report's headline figures use
DRIFT = "representation_drift"
PRIOR_KL = "prior_forward_kl"


@dataclass(frozen=True)
class Finding:
    """A claim's outcome in one study, the figures it rests on (markdown-safe: no '|'), and why."""

    outcome: Outcome
    figures: str
    reason: str
    details: tuple[str, ...] = ()  # markdown lines shown below the comparison table


def untestable(reason: str) -> Finding:
    return Finding("untestable", "-", reason)


def fine_tuned(points: Points) -> Points:
    """The checkpoints (pi0 apart: its forgetting is 0 by construction)."""
    return [p for p in points if p["method"] != "pi0"]


def methods_of(points: Points) -> tuple[str, ...]:
    return tuple(sorted({str(p["method"]) for p in fine_tuned(points)}))


def single_run(points: Points, methods: Sequence[str]) -> list[str]:
    """The ``methods`` with one training run: resampling runs gives them no spread, so an interval that
    involves them would look decisive on nothing (the report prints "1 run: no interval")."""
    return [m for m in methods if len({p["run"] for p in points if p["method"] == m}) < 2]


def _single_run_reason(methods: list[str]) -> str:
    return (
        f"{', '.join(methods)} {'has' if len(methods) == 1 else 'have'} a single run: no interval over runs"
    )


def _num(value: float, fmt: str = ".2f") -> str:
    return format(value, fmt) if math.isfinite(value) else "n/a"


def _r2(value: float, ci: BootstrapInterval) -> str:
    return f"{_num(value)} [{_num(ci.low)}, {_num(ci.high)}]"


def _combine(outcomes: Sequence[Outcome]) -> Outcome:
    """Parts of one claim: it holds only if every part holds, and fails if any part fails."""
    if "fails" in outcomes:
        return "fails"
    return "holds" if all(o == "holds" for o in outcomes) else "unclear"


# ---------------------------------------------------------------------------------------------------------
# Claim 1: RL forgets less at matched new-task success
# ---------------------------------------------------------------------------------------------------------


def comparable_levels(points: Points, levels: Sequence[float]) -> tuple[float, ...]:
    """The levels above pi0's new-task success that the frontier of every RL method and of SFT reaches
    (``frontier.levels_all_reach``)."""
    return levels_all_reach(
        [method_points(points, m)[:2] for m in MATCHED_METHODS], levels, above=pi0_floor(points)
    )


def claim1_missing(points: Points) -> list[str]:
    """The methods the matched-success claim needs that the study does not hold."""
    present = set(methods_of(points))
    return [m for m in MATCHED_METHODS if m not in present]


def _gap_outcome(gaps: list[tuple[float, BootstrapInterval]]) -> Outcome:
    """Holds if every RL-minus-SFT gap's interval lies above 0; fails if one lies below 0 or every gap is
    negative; unclear otherwise."""
    if gaps and all(ci.n_valid and ci.low > 0 for _, ci in gaps):
        return "holds"
    if any(ci.n_valid and ci.high < 0 for _, ci in gaps) or (gaps and all(g < 0 for g, _ in gaps)):
        return "fails"
    return "unclear"


def _points_text(value: float) -> str:
    return _num(value * 100, "+.0f")


def matched_success_finding(
    points: Points, levels: Sequence[float], *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
) -> Finding:
    """RL's prior-skill success minus SFT's at matched new-task success, with and without pi0 as the
    frontiers' anchor (see ``_gap_outcome``; the claim holds only if it holds both ways)."""
    missing = claim1_missing(points)
    if missing:
        return untestable(f"the study has no {', '.join(missing)} runs")
    if single_run(points, MATCHED_METHODS):
        return untestable(_single_run_reason(single_run(points, MATCHED_METHODS)))
    if not levels:
        return untestable("no new-task success level above pi0's that every RL method and SFT reaches")
    sft = method_points(points, SFT_METHOD)
    parts: list[Outcome] = []
    texts, details = [], []
    for with_pi0 in (True, False):
        anchor = pi0_anchor(points) if with_pi0 else None
        gaps: list[tuple[float, BootstrapInterval]] = []
        cells = []
        for method in RL_METHODS:
            gap = matched_prior_gap(
                method_points(points, method), sft, levels, bootstrap=bootstrap, anchor=anchor
            )
            gaps += list(zip(gap.gap, gap.intervals, strict=True))
            cells.append(
                f"{method} "
                + ", ".join(
                    f"{_points_text(g)} [{_points_text(ci.low)}, {_points_text(ci.high)}]"
                    for g, ci in zip(gap.gap, gap.intervals, strict=True)
                )
            )
        parts.append(_gap_outcome(gaps))
        variant = "with pi0" if with_pi0 else "without pi0"
        texts.append(f"{variant} ({parts[-1]}): " + "; ".join(cells))
        details += [
            f"Prior-skill success at matched new-task success, {variant} as a frontier anchor:",
            "",
            *matched_success_table(points, tuple(levels), with_pi0=with_pi0),
            "",
        ]
    level_text = ", ".join(f"{lv:.0%}" for lv in levels)
    figures = f"prior-skill success, RL minus {SFT_METHOD} (points) at new-task {level_text}: " + "; ".join(
        texts
    )
    outcome = _combine(parts)
    reason = {
        "holds": "every RL method keeps more prior skill than SFT at every level, intervals above 0",
        "fails": "SFT keeps more prior skill than an RL method at some level (interval below 0), "
        "or every gap is negative",
        "unclear": "some gap's interval contains 0",
    }[outcome]
    return Finding(outcome, figures, reason, tuple(details))


# ---------------------------------------------------------------------------------------------------------
# Claims 2-5: the predictors of forgetting
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictorFigures:
    """What claims 2-5 read from one study's checkpoints, each computed once."""

    points: Points  # fine-tuned checkpoints
    metrics: dict[str, str]  # predictor key -> label, as the report lists them
    lomo: dict[str, tuple[float, BootstrapInterval]]  # clipped leave-one-method-out R² and its interval
    bootstrap: Bootstrap

    def column(self, key: str) -> np.ndarray:
        return np.array([p[key] for p in self.points])


def predictor_figures(points: Points, *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP) -> PredictorFigures | None:
    """The clipped leave-one-method-out R² of every predictor (the report's "R² clipped" column); None when
    the study cannot score it (``predictors_untestable``)."""
    pts = fine_tuned(points)
    if predictors_untestable(pts):
        return None
    metrics = measured_metrics(pts)
    y = np.array([p["forgetting"] for p in pts], dtype=float)
    groups, runs = np.array([p["method"] for p in pts]), np.array([p["run"] for p in pts])
    lomo = {}
    for key in metrics:
        x = np.array([p[key] for p in pts], dtype=float)
        r2 = leave_one_group_out(x, y, groups, FIT, clip=FORGETTING_RANGE).r2
        ci = transfer_interval(x, y, groups, runs, FIT, clip=FORGETTING_RANGE, bootstrap=bootstrap)
        lomo[key] = (r2, ci)
    return PredictorFigures(pts, metrics, lomo, bootstrap)


def predictors_untestable(points: Points) -> str | None:
    """Why the study cannot score its predictors across methods, or None when it can."""
    pts, methods = fine_tuned(points), methods_of(points)
    if len(methods) < 2:
        return f"one method only ({', '.join(methods) or 'none'}): nothing to hold out"
    if not r2_meaningful(len(pts)):
        return f"{len(pts)} checkpoints, fewer than R² needs"
    if single_run(pts, methods):
        return _single_run_reason(single_run(pts, methods))
    return None


def _why_untestable(points: Points) -> str:
    return predictors_untestable(points) or "no figures"


def _lacks_forward_kl(figures: PredictorFigures) -> Finding | None:
    """Results recorded before KL was measured have none: nothing to test forward KL's claims on."""
    return None if "forward_kl" in figures.metrics else untestable("the study did not measure forward KL")


def one_curve_finding(figures: PredictorFigures | None, points: Points) -> Finding:
    """Forward KL's clipped leave-one-method-out R² (quadratic), pooled and for each held-out method.

    Holds if the pooled interval lies at or above ``R2_THRESHOLD`` and every held-out method's own R² has an
    interval at or above 0 (forecast better than the pooled mean); fails if the pooled interval lies below
    the threshold or some method's lies below 0; unclear otherwise."""
    if figures is None:
        return untestable(_why_untestable(points))
    if lacking := _lacks_forward_kl(figures):
        return lacking
    y, groups, runs = (
        figures.column("forgetting").astype(float),
        figures.column("method"),
        figures.column("run"),
    )
    x = figures.column("forward_kl").astype(float)
    r2, ci = figures.lomo["forward_kl"]
    folds = fold_r2(x, y, groups, FIT, clip=FORGETTING_RANGE)
    fold_ci = fold_r2_intervals(x, y, groups, runs, FIT, clip=FORGETTING_RANGE, bootstrap=figures.bootstrap)
    holds = ci.low >= R2_THRESHOLD and all(c.n_valid and c.low >= 0 for c in fold_ci.values())
    fails = ci.high < R2_THRESHOLD or any(c.n_valid and c.high < 0 for c in fold_ci.values())
    outcome: Outcome = "fails" if fails else "holds" if holds else "unclear"
    fold_text = ", ".join(f"{m} {_r2(folds.get(m, math.nan), c)}" for m, c in fold_ci.items())
    text = (
        f"forward KL, clipped leave-one-method-out R² {_r2(r2, ci)}; "
        f"each held-out method's own R²: {fold_text}"
    )
    reason = {
        "holds": f"pooled R² interval at or above {R2_THRESHOLD}, every method forecast better than the mean",
        "fails": f"pooled R² interval below {R2_THRESHOLD}, or a method forecast worse than the mean",
        "unclear": "an interval straddles its threshold",
    }[outcome]
    return Finding(outcome, text, reason)


def _lomo_best(figures: PredictorFigures, target: str) -> tuple[Outcome, str]:
    """Is ``target``'s clipped leave-one-method-out R² the best? Holds if its interval lies above every other
    predictor's; fails if another's lies above it; unclear when they overlap. The text names the rival that
    decides: the one whose interval reaches highest."""
    r2, ci = figures.lomo[target]
    name = figures.metrics[target]
    others = {k: v for k, v in figures.lomo.items() if k != target}
    if not others:
        return "unclear", f"{name} {_r2(r2, ci)}, no other predictor"
    if any(o_ci.low > ci.high for _, o_ci in others.values()):
        outcome: Outcome = "fails"
        rival = max(others, key=lambda k: others[k][1].low)
    else:
        outcome = "holds" if all(ci.low > o_ci.high for _, o_ci in others.values()) else "unclear"
        rival = max(others, key=lambda k: others[k][1].high)
    return outcome, f"{name} {_r2(r2, ci)}; best other: {figures.metrics[rival]} {_r2(*others[rival])}"


def forward_kl_best_finding(figures: PredictorFigures | None, points: Points) -> Finding:
    """Forward KL against every other predictor the report compares, out of sample two ways.

    Leave-one-run-out: the report's paired comparisons (R² difference of quadratic fits, interval over
    runs); forward KL is best if it beats every other predictor (interval above 0), and not best if one
    beats it (interval below 0). Leave-one-method-out: ``_lomo_best`` on the clipped R². The claim holds
    only if both hold, fails if either fails."""
    if figures is None:
        return untestable(_why_untestable(points))
    if lacking := _lacks_forward_kl(figures):
        return lacking
    y, runs = figures.column("forgetting").astype(float), figures.column("run")
    kl = figures.column("forward_kl").astype(float)
    verdicts, diffs = [], []
    for key in figures.metrics:
        if key == "forward_kl":
            continue
        cmp = compare_predictors(
            kl, figures.column(key).astype(float), y, runs, FIT, bootstrap=figures.bootstrap
        )
        verdicts.append(cmp.verdict)
        ci = cmp.interval
        span = (
            f" [{format_r2_difference(ci.low)}, {format_r2_difference(ci.high)}]" if ci and ci.n_valid else ""
        )
        diffs.append(f"{figures.metrics[key]} {format_r2_difference(cmp.difference)}{span}")
    loro: Outcome = (
        "fails"
        if "B better" in verdicts
        else "holds"
        if verdicts and all(v == "A better" for v in verdicts)
        else "unclear"
    )
    lomo, lomo_text = _lomo_best(figures, "forward_kl")
    outcome = _combine([loro, lomo])
    text = (
        f"leave-one-run-out R², forward KL minus ({loro}): {', '.join(diffs)}; "
        f"leave-one-method-out clipped R² ({lomo}): {lomo_text}"
    )
    reason = {
        "holds": "forward KL beats every other predictor both ways",
        "fails": "another predictor beats forward KL (interval clear of it) in one of the two tests",
        "unclear": "forward KL cannot be told apart from the best predictor",
    }[outcome]
    return Finding(outcome, text, reason)


def drift_transfers_best_finding(figures: PredictorFigures | None, points: Points) -> Finding:
    """Representation drift's clipped leave-one-method-out R² against every other predictor's
    (``_lomo_best``)."""
    if figures is None:
        return untestable(_why_untestable(points))
    if DRIFT not in figures.metrics:
        return untestable("the study did not measure representation drift")
    outcome, text = _lomo_best(figures, DRIFT)
    reason = {
        "holds": "drift's interval lies above every other predictor's",
        "fails": "another predictor's interval lies above drift's",
        "unclear": "drift's interval overlaps another predictor's",
    }[outcome]
    return Finding(outcome, f"leave-one-method-out clipped R²: {text}", reason)


def prior_state_kl_finding(figures: PredictorFigures | None, points: Points) -> Finding:
    """Prior-state KL across methods (clipped leave-one-method-out R²) and within them (partial correlation
    beyond the method label, ANCOVA). Holds if the R² interval lies at or above ``R2_THRESHOLD`` and the
    partial correlation's above 0; fails if the R² interval lies below the threshold or the partial
    correlation's below 0; unclear otherwise."""
    if figures is None:
        return untestable(_why_untestable(points))
    if PRIOR_KL not in figures.metrics:
        return untestable("the study did not measure prior-state KL")
    r2, ci = figures.lomo[PRIOR_KL]
    fit = beyond_label(
        figures.column(PRIOR_KL).astype(float),
        figures.column("forgetting").astype(float),
        figures.column("method"),
        figures.column("run"),
        bootstrap=figures.bootstrap,
    )
    r_ci = fit.r_interval
    holds = ci.low >= R2_THRESHOLD and r_ci.n_valid > 0 and r_ci.low > 0
    fails = ci.high < R2_THRESHOLD or (r_ci.n_valid > 0 and r_ci.high < 0)
    outcome: Outcome = "fails" if fails else "holds" if holds else "unclear"
    partial = f"{_num(fit.partial_r, '+.2f')} [{_num(r_ci.low, '+.2f')}, {_num(r_ci.high, '+.2f')}]"
    text = (
        f"clipped leave-one-method-out R² {_r2(r2, ci)}; "
        f"partial correlation beyond the method label {partial}"
    )
    reason = {
        "holds": f"forecasts unseen methods (R² interval at or above {R2_THRESHOLD}) "
        "and tracks forgetting within them",
        "fails": f"R² interval below {R2_THRESHOLD}, or forgetting falls as it grows within methods",
        "unclear": "an interval straddles its threshold",
    }[outcome]
    return Finding(outcome, text, reason)
