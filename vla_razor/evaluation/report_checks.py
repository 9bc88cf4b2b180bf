"""The report's sections that check what the study's data support, beyond the pooled predictors table:

- leave-one-method-out fold by fold, unclipped and clipped to forgetting's range, for the quadratic,
  linear and monotone fits, and over the methods left after dropping one (``method_transfer``);
- how much of forgetting the method label alone explains, and what each predictor adds within methods
  (``method_identity``);
- Spearman rank correlations within each method (``rank_correlation``);
- each method's new-task learning curve pooled over seeds (``learning_curve``), and for the BC family the
  loss on the training and the held-back demos at each checkpoint.

The table functions take the study's points without pi0 (its forgetting is 0 by construction) and the
predictors to show (key -> label); the learning curves take the results document, whose records hold each
episode's outcome. All return markdown lines.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla_razor.evaluation.learning_curve import arm_labels, learning_curves
from vla_razor.evaluation.method_identity import beyond_label, label_r2
from vla_razor.evaluation.method_transfer import leave_one_group_out, transfer_interval, transfer_without
from vla_razor.evaluation.predictor_fits import FitKind
from vla_razor.evaluation.rank_correlation import rank_correlation
from vla_razor.evaluation.stats import FORGETTING_RANGE, BootstrapInterval

Points = list[dict[str, Any]]
FIT_KINDS: tuple[FitKind, ...] = ("quadratic", "linear", "monotone")


def _column(points: Points, key: str) -> np.ndarray:
    return np.array([p[key] for p in points])


def _num(value: float, fmt: str = ".2f") -> str:
    return "n/a" if not math.isfinite(value) else format(value, fmt)


def _p(value: float) -> str:
    """A p-value to 2 significant digits, or "< 0.001" (more digits there would only be noise)."""
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"= {value:.2g}"


def _interval(ci: BootstrapInterval | tuple[float, float], fmt: str = ".2f") -> str:
    low, high = (ci.low, ci.high) if isinstance(ci, BootstrapInterval) else ci
    return f"[{_num(low, fmt)}, {_num(high, fmt)}]"


PROGRESS = "training progress (step / the run's last step)"


def with_progress(points: Points) -> Points:
    """The points with ``progress``: a checkpoint's step over its run's last step (NaN without a step).

    It is the within-method baseline: forgetting and every predictor grow as a run trains, and steps are on
    different scales per method (BC's 500-2000, RFT's 4-16), so the fraction of the run is what compares."""
    last: dict[str, float] = {}
    for p in points:
        if p.get("step") is not None:
            last[p["run"]] = max(last.get(p["run"], 0.0), float(p["step"]))
    return [
        {**p, "progress": float(p["step"]) / last[p["run"]] if p.get("step") is not None else float("nan")}
        for p in points
    ]


def _with_baseline(points: Points, metrics: dict[str, str]) -> tuple[Points, dict[str, str]]:
    """The points with training progress, and the rows to show: the predictors, then progress when some
    checkpoint records its step (results without steps have no baseline row)."""
    points = with_progress(points)
    if not any(math.isfinite(p["progress"]) for p in points):
        return points, metrics
    return points, {**metrics, "progress": PROGRESS}


def _few_runs_note(points: Points) -> str:
    """With k runs a method has C(2k - 1, k) distinct run resamples: few, so the intervals understate."""
    fewest = min(len({p["run"] for p in points if p["method"] == m}) for m in {p["method"] for p in points})
    if fewest > 4:
        return ""
    return (
        f"; with {fewest} runs a method has only {math.comb(2 * fewest - 1, fewest)} distinct resamples, so "
        "this interval understates the spread between seeds"
    )


def transfer_by_fold_lines(points: Points, metrics: dict[str, str]) -> list[str]:
    """Leave-one-method-out R² and each held-out method's share of the error, unclipped → clipped."""
    methods = sorted({str(p["method"]) for p in points})
    if len(methods) < 2:
        return ["Leave-one-method-out by fold: one method only, nothing to hold out."]
    y, groups, runs = (
        _column(points, "forgetting").astype(float),
        _column(points, "method"),
        _column(points, "run"),
    )
    lines = [
        "Leave-one-method-out, fold by fold. Each fold cell is the held-out method's squared forecast error as "
        "a multiple of SST (the spread of all checkpoints around their mean); a row's cells sum to 1 - R². "
        f"Each cell reads unclipped → clipped: forecasts clipped to forgetting's range "
        f"[{FORGETTING_RANGE[0]:g}, {FORGETTING_RANGE[1]:g}], which a polynomial extrapolated past the KL its "
        "fit saw can leave. The clipped R² has a 95% interval resampling runs within each method (every "
        f"resample keeps all methods){_few_runs_note(points)}. The leave-one-method-out table above resamples "
        "runs regardless of method, so some of its resamples lose a method or hold one method's runs only, "
        "which widens its intervals.",
    ]
    for kind in FIT_KINDS:
        lines += [
            "",
            f"{kind.capitalize()} fit:",
            "",
            "| predictor | R² | R² clipped | " + " | ".join(f"{m} held out" for m in methods) + " |",
            "|---|---|---|" + "---|" * len(methods),
        ]
        for key, label in metrics.items():
            x = _column(points, key).astype(float)
            raw = leave_one_group_out(x, y, groups, kind)
            clipped = leave_one_group_out(x, y, groups, kind, clip=FORGETTING_RANGE)
            ci = transfer_interval(x, y, groups, runs, kind, clip=FORGETTING_RANGE)
            folds = [f"{_num(raw.fold_share[m])} → {_num(clipped.fold_share[m])}" for m in methods]
            lines.append(
                f"| {label} | {_num(raw.r2)} | {_num(clipped.r2)} {_interval(ci)} | "
                + " | ".join(folds)
                + " |"
            )
    if len(methods) < 3:
        return lines
    lines += [
        "",
        "Leave-one-method-out over the methods left after dropping one entirely (forecasts clipped; R² "
        "around the mean of the checkpoints left): does the curve transfer among the other methods, or does "
        "one method carry the fit?",
        "",
        "| predictor | fit | all methods | " + " | ".join(f"without {m}" for m in methods) + " |",
        "|---|---|---|" + "---|" * len(methods),
    ]
    for key, label in metrics.items():
        x = _column(points, key).astype(float)
        for kind in ("quadratic", "linear"):
            full = leave_one_group_out(x, y, groups, kind, clip=FORGETTING_RANGE).r2
            without = transfer_without(x, y, groups, kind, clip=FORGETTING_RANGE)
            cells = " | ".join(_num(without[m]) for m in methods)
            lines.append(f"| {label} | {kind} | {_num(full)} | {cells} |")
    return lines


def method_identity_lines(points: Points, metrics: dict[str, str]) -> list[str]:
    """R² of the method label alone, and each predictor's partial R² beyond it (ANCOVA)."""
    y, groups, runs = (
        _column(points, "forgetting").astype(float),
        _column(points, "method"),
        _column(points, "run"),
    )
    if np.unique(groups).size < 2:
        return ["Method label: one method only, no baseline to compare with."]
    label = label_r2(y, groups, runs)
    lines = [
        "The method label alone (each checkpoint forecast by its method's mean forgetting) explains "
        f"R² = {_num(label.in_sample)} {_interval(label.interval)} of forgetting in sample (95% interval "
        "resampling runs within each method), and "
        f"{_num(label.loro)} leave-one-run-out (each run forecast by the mean of its method's other runs). "
        "A predictor that only tells the methods apart fits as well as this without saying anything about "
        "forgetting within a method.",
        "",
        "What each predictor adds beyond the method label (ANCOVA: forgetting ~ one intercept per method + a "
        "common linear slope in the predictor). Partial R² = 1 - SSE(method + predictor) / SSE(method), the "
        "share of the within-method variance the slope explains; the partial correlation is its signed "
        f"square root. 95% intervals resample runs within each method{_few_runs_note(points)}. A partial R² "
        "cannot go below 0, so read "
        "whether the partial correlation's interval excludes 0. The last row is a baseline, training "
        "progress (a checkpoint's step over its run's last step): forgetting and every predictor grow as a "
        "run trains, so a predictor that does no better than progress adds nothing to knowing how far a run "
        "has trained.",
        "",
        "| predictor | partial R² beyond the method label | partial correlation |",
        "|---|---|---|",
    ]
    points, rows = _with_baseline(points, metrics)
    for key, name in rows.items():
        fit = beyond_label(_column(points, key).astype(float), y, groups, runs)
        lines.append(
            f"| {name} | {_num(fit.partial_r2)} {_interval(fit.r2_interval)} | "
            f"{_num(fit.partial_r, '+.2f')} {_interval(fit.r_interval, '+.2f')} |"
        )
    return lines


def within_method_rank_lines(points: Points, metrics: dict[str, str]) -> list[str]:
    """Spearman's rho of forgetting with each predictor inside each method, with two intervals."""
    methods = sorted({str(p["method"]) for p in points})
    lines = [
        "Within each method, Spearman's rank correlation of forgetting with each predictor: rho, its 95% "
        "Fisher-z interval (Bonett-Wright standard error) and the two-sided p of scipy's spearmanr. Both treat "
        "a method's checkpoints as independent, which checkpoints of one run are not, so both are "
        "optimistic; no interval resamples runs here, since 3 runs give a run bootstrap only 10 distinct "
        "resamples. Ties, such as two checkpoints that forget exactly as much, get average ranks. The last "
        "row is the training-progress baseline again.",
        "",
        "| predictor | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    points, rows = _with_baseline(points, metrics)
    for key, label in rows.items():
        cells = []
        for method in methods:
            pts = [p for p in points if p["method"] == method]
            rc = rank_correlation(_column(pts, key).astype(float), _column(pts, "forgetting").astype(float))
            cells.append(f"{_num(rc.rho, '+.2f')} {_interval(rc.fisher, '+.2f')}, p {_p(rc.p)}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def learning_curve_lines(document: dict[str, Any]) -> list[str]:
    """Each method's new-task success per checkpoint step, pooled over its runs, first step against last."""
    curves = learning_curves(document)
    if not curves:
        return ["No checkpoint records a training step: no learning curve."]
    lines = [
        "New-task success at each checkpoint step, pooled over a method's runs (k/n with a 95% Wilson "
        "interval, which treats every episode as independent and so leaves out the spread between seeds: "
        "the runs' own rates are listed beside it).",
        "",
        "| method | step | new-task success, pooled | each run |",
        "|---|---|---|---|",
    ]
    for method, curve in curves.items():
        for s in curve.steps:
            w = s.success
            runs = ", ".join(f"{rate:.0%}" for rate in s.per_run.values())
            lines.append(
                f"| {method} | {s.step} | {w.rate:.1%} ({w.k}/{w.n}) [{w.low:.1%}, {w.high:.1%}] | {runs} |"
            )
    lines += ["", "First checkpoint against last (pooled two-proportion z test, two-sided):", ""]
    for method, curve in curves.items():
        test = curve.first_vs_last()
        if test is None:
            continue
        first, last = curve.steps[0], curve.steps[-1]
        lines.append(
            f"- {method}: {first.success.rate:.1%} at step {first.step} → {last.success.rate:.1%} at step "
            f"{last.step} ({-test.difference * 100:+.1f} points, z = {_num(-test.z)}, p {_p(test.p)})"
        )
    return lines


def demo_loss_lines(document: dict[str, Any]) -> list[str]:
    """The BC family's action-token loss on its training demos and on the held-back demos at each
    checkpoint, mean over runs (each run's in brackets): where held-out loss turns up while training loss
    keeps falling, the run is fitting its demos, not the task. Empty when no record carries the losses."""
    records = {
        pid: rec
        for pid, rec in document["policies"].items()
        if pid != "pi0" and rec.get("trainer") and rec.get("step") is not None and rec.get("demo_losses")
    }
    if not records:
        return []
    label = arm_labels(records)
    table: dict[str, dict[int, list[dict[str, float]]]] = {}
    for pid, rec in records.items():
        table.setdefault(label[pid], {}).setdefault(int(rec["step"]), []).append(rec["demo_losses"])
    lines = [
        "Action-token cross-entropy (nats per token) on the training demos and on the held-back demos "
        "(the same evenly spaced sample of each at every checkpoint, no augmentation), mean over runs "
        "(each run's in brackets):",
        "",
        "| arm | step | training demos | held-back demos | held-back - training |",
        "|---|---|---|---|---|",
    ]

    def cell(values: list[float]) -> str:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return "-"
        return f"{np.mean(finite):.3f} ({', '.join(f'{v:.3f}' for v in finite)})"

    for arm, steps in sorted(table.items()):
        for step, losses in sorted(steps.items()):
            train = [d.get("train_demos_loss", float("nan")) for d in losses]
            held = [d.get("val_loss", float("nan")) for d in losses]
            gaps = [h - tr for h, tr in zip(held, train, strict=True)]
            lines.append(f"| {arm} | {step} | {cell(train)} | {cell(held)} | {cell(gaps)} |")
    return lines
