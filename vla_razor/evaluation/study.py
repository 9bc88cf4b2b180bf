"""The RL's Razor study on saved results: points per checkpoint, fits of forgetting against every
candidate metric (RL's Razor Table 1), the Pareto and forgetting-vs-KL plots, and report.md."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from vla_razor.errors import BadInputError, MissingFileError, UserError
from vla_razor.evaluation.fit import polyfit_r2
from vla_razor.evaluation.forecast import (
    Calibration,
    ForecastScore,
    ForecastValidation,
    calibrate_forecast,
    validate_forecast,
)
from vla_razor.evaluation.frontier import matched_prior_success
from vla_razor.evaluation.lr_choice import learning_rate_lines
from vla_razor.evaluation.mechanism import mechanism_lines
from vla_razor.evaluation.plots import forgetting_plot, pareto_plot
from vla_razor.evaluation.points import method_points, pi0_anchor
from vla_razor.evaluation.predictor_fits import (
    MIN_POINTS_FOR_R2,
    assess_predictor,
    compare_predictors,
    r2_meaningful,
)
from vla_razor.evaluation.report_checks import (
    demo_loss_lines,
    learning_curve_lines,
    method_identity_lines,
    transfer_by_fold_lines,
    within_method_rank_lines,
)
from vla_razor.evaluation.table import decode_note
from vla_razor.file_checks import DELETE_UNIT, REEVALUATE, read_json_object
from vla_razor.io_utils import atomic_path, ensure_writable_dir

# metric key in a point -> (label in tables/plots)
METRICS = {
    "forward_kl": "forward KL(pi0‖pi) on new-task states",
    "reverse_kl": "reverse KL(pi‖pi0)",
    "tv": "total variation (per token)",
    "l2": "L2 between token distributions",
    "weight_l2": "L2 distance of weights from pi0",
    "representation_drift": "representation drift (1 - linear CKA, action position)",
    "prior_forward_kl": "forward KL(pi0‖pi) on prior-task states",
}


# New-task success levels at which methods' prior-skill success is compared: fixed levels, plus the levels
# at these fractions of the range every method's frontier covers (from pi0's new-task success to the
# lowest best new-task success among the methods), so that some levels are always inside every frontier.
MATCHED_LEVELS = (0.25, 0.5, 0.75)
COMMON_RANGE_FRACTIONS = (1 / 3, 2 / 3, 1.0)


def matched_levels(points: list[dict[str, Any]]) -> tuple[float, ...]:
    base = [p["new_task_success"] for p in points if p["method"] == "pi0"]
    methods = {p["method"] for p in points if p["method"] != "pi0"}
    if not base or not methods:
        return MATCHED_LEVELS
    top = min(max(p["new_task_success"] for p in points if p["method"] == m) for m in methods)
    # Rounded to merge with the fixed levels, but never above ``top``: a best of 16/52 = 0.30769 rounded up
    # to 0.3077 put the top level just outside the frontier of the very method that reached it.
    common = [
        min(round(base[0] + f * (top - base[0]), 4), top) for f in COMMON_RANGE_FRACTIONS if top > base[0]
    ]
    return tuple(sorted(set(common) | set(MATCHED_LEVELS)))


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json (or a folder holding one) written by ``vla-razor eval``, or a recorded study folder
    (``pi0.json`` + ``runs/*.json``) written by ``vla-razor razor``."""
    path = Path(path)
    if path.is_dir() and is_recorded_study(path):
        return study_document(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise MissingFileError(
            f"no results.json or recorded study in {str(path)!r}; run `vla-razor eval` or `vla-razor razor` first"
        )
    return read_json_object(file, REEVALUATE)


# A recorded study: one small JSON per unit (pi0, then one per training run), committed as it is written.
STUDY_PI0 = "pi0.json"
STUDY_RUNS = "runs"


def _unit_path(study_dir: str | Path, name: str) -> Path:
    return Path(study_dir) / STUDY_PI0 if name == "pi0" else Path(study_dir) / STUDY_RUNS / f"{name}.json"


def is_recorded_study(path: str | Path) -> bool:
    """A study folder holds pi0's unit (a results document of its own), not only a results.json."""
    head = Path(path) / STUDY_PI0
    if not head.is_file() or (Path(path) / "results.json").is_file():
        return False
    return {"suite", "policies"} <= set(read_json_object(head, DELETE_UNIT))


def study_unit_exists(study_dir: str | Path, name: str, pi0_hash: str) -> bool:
    """Whether ``name`` is recorded in the study, against this pi0 (a unit of another pi0 is refused)."""
    path = _unit_path(study_dir, name)
    if not path.is_file():
        return False
    recorded = read_json_object(path, DELETE_UNIT).get("pi0", {}).get("hash")
    if recorded != pi0_hash:
        raise BadInputError(
            f"study {str(study_dir)!r} records {name} against another pi0 ({recorded}); use another study_dir "
            "(results of different pi0s must not be mixed)"
        )
    return True


def write_study_unit(
    study_dir: str | Path,
    name: str,
    document: dict[str, Any],
    policy_ids: list[str],
    compute: dict[str, Any] | None = None,
) -> Path:
    """Record one unit: the suite header of ``document`` and the records of ``policy_ids`` only, with
    what the unit cost (``compute``: wall seconds and the machine), if given. The study's pi0 unit is
    written once: a second pi0, or another suite, is refused, never overwritten."""
    head = _unit_path(study_dir, "pi0")
    if head.is_file():
        existing = read_json_object(head, DELETE_UNIT)
        if existing.get("suite") != document["suite"] or existing.get("pi0") != document["pi0"]:
            raise BadInputError(
                f"study {str(study_dir)!r} was recorded with another suite or pi0 "
                f"({existing.get('pi0', {}).get('hash')}); use another study_dir"
            )
        if name == "pi0":
            return head
    unit = {k: v for k, v in document.items() if k != "policies"}
    unit["unit"] = name
    unit["policies"] = {pid: document["policies"][pid] for pid in policy_ids}
    if compute is not None:
        unit["compute"] = compute
    path = _unit_path(study_dir, name)
    ensure_writable_dir(path.parent, what="study directory")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(unit, indent=1) + "\n")
    return path


def study_document(study_dir: str | Path) -> dict[str, Any]:
    """The results document of a recorded study: pi0's unit plus every run's, checked to share one suite
    and one pi0 (a unit recorded against another pi0 is a one-line error, never silently mixed)."""
    study_dir = Path(study_dir)
    head = _unit_path(study_dir, "pi0")
    if not head.is_file():
        raise MissingFileError(f"{str(study_dir)!r} is not a recorded study: it has no {STUDY_PI0}")
    document = read_json_object(head, DELETE_UNIT)
    document.pop("unit", None)
    for path in sorted((study_dir / STUDY_RUNS).glob("*.json")):
        unit = read_json_object(path, DELETE_UNIT)
        if unit["suite"] != document["suite"]:
            raise BadInputError(
                f"study unit {path.name} was evaluated on another suite; re-evaluate it or remove it"
            )
        if unit["pi0"].get("hash") != document["pi0"].get("hash"):
            raise BadInputError(
                f"study unit {path.name} was evaluated against another pi0 ({unit['pi0'].get('hash')}); "
                "re-evaluate it or remove it"
            )
        document["policies"].update(unit["policies"])
        trainers = {str(rec.get("trainer")) for rec in unit["policies"].values()}
        cost = unit.get("compute")
        document.setdefault("compute", {})[unit.get("unit", path.stem)] = (
            {**cost, "method": "/".join(sorted(trainers))} if cost else None
        )
    return document


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _summed(units: list[dict[str, Any]], key: str) -> str:
    """Hours of ``key`` summed over the units that recorded it, with how many did: a unit can be timed for
    its evaluation alone (its run was trained before the process that recorded it)."""
    seconds = [float(c[key]) for c in units if key in c]
    if not seconds:
        return "-"
    return f"{_hours(sum(seconds))} ({len(seconds)} run{'s' if len(seconds) > 1 else ''})"


def compute_lines(document: dict[str, Any]) -> list[str]:
    """What the recorded runs cost: wall time of training and evaluation per method, and the machines.

    Each unit records the wall time of the process that recorded it. A run resumed after an interruption
    counts only the training after the resume, and an evaluation resumed from stored episodes only the
    episodes it played; units recorded before timing existed have none. So the sums are lower bounds
    and say how many runs they cover."""
    compute = document.get("compute")
    if not compute:
        return []
    timed = {name: c for name, c in compute.items() if c}
    if not timed:
        return [f"No wall time recorded: the {len(compute)} runs were recorded before units carried it."]
    lines = [
        f"Wall time recorded for {len(timed)} of {len(compute)} runs "
        "(lower bounds: a resumed unit counts only the work after its resume, and a run trained before the "
        "study process that recorded it has no training time).",
        "",
        "| method | training (runs timed) | evaluation (runs timed) |",
        "|---|---|---|",
    ]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for _, c in sorted(timed.items()):
        by_method.setdefault(str(c["method"]), []).append(c)
    for method, units in by_method.items():
        cells = [_summed(units, key) for key in ("train_s", "eval_s")]
        lines.append(f"| {method} | {cells[0]} | {cells[1]} |")
    lines += _span_lines([c["span_utc"] for c in timed.values() if "span_utc" in c])
    machines = sorted({str(c.get("machine")) for c in timed.values()})
    if machines:
        lines += ["", "On: " + "; ".join(machines) + "."]
    return lines


def _span_lines(spans: list[list[str]]) -> list[str]:
    """The wall time the recorded spans cover together (units that ran at once count once), and how many
    ran at the same time as another: on one machine, their times in the table above include the sharing."""
    if not spans:
        return []
    intervals = sorted((datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in spans)
    covered, reached = 0.0, intervals[0][0]
    for start, stop in intervals:  # sorted by start: count only what lies past the furthest end so far
        covered += max(0.0, (stop - max(start, reached)).total_seconds())
        reached = max(reached, stop)
    beside = sum(
        any(j != i and a < stop and start < b for j, (a, b) in enumerate(intervals))
        for i, (start, stop) in enumerate(intervals)
    )
    summed = sum((stop - start).total_seconds() for start, stop in intervals)
    runs = f"{len(spans)} run{'s' if len(spans) > 1 else ''}"
    return [
        "",
        f"{runs} recorded the span of the process that ran {'them' if len(spans) > 1 else 'it'}: "
        f"{_hours(covered)} of wall time together, against {_hours(summed)} summed. {beside} ran at the "
        "same time as another unit (Ray or SLURM units); on one machine, their times above include the sharing.",
    ]


def merge_results(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine several results documents of the SAME suite (refuses to mix suites)."""
    if not documents:
        raise BadInputError("no results to merge")
    first = documents[0]
    for doc in documents[1:]:
        if doc["suite"] != first["suite"]:
            raise BadInputError(
                f"results of different suites cannot be mixed: {first['suite'].get('name')!r} vs "
                f"{doc['suite'].get('name')!r} (or different seeds/N)"
            )
    merged = dict(first)
    merged["policies"] = {}
    for doc in documents:
        merged["policies"].update(doc["policies"])
    return merged


def study_points(document: dict[str, Any]) -> list[dict[str, Any]]:
    points = []
    for pid, rec in document["policies"].items():
        div = rec.get("divergence") or {}
        method = "pi0" if pid == "pi0" else str(rec.get("trainer") or pid.split("_")[0])
        points.append(
            {
                "policy": pid,
                # Checkpoints of one training run are not independent: out-of-sample fits hold out a
                # whole run, named by the policy id without its "/step_N".
                "run": pid.rsplit("/", 1)[0],
                "method": method,
                "lr": rec.get("lr"),
                "seed": rec.get("seed"),
                "step": rec.get("step"),
                "new_task_success": rec["new_task_success"],
                "new_task_success_sem": rec["new_task_success_sem"],
                "prior_success": rec["prior_success"],
                "prior_success_sem": rec["prior_success_sem"],
                "forgetting": rec["forgetting"]["mean"],
                "forgetting_sem": rec["forgetting"]["mean_sem"],
                **{k: div.get(k, float("nan")) for k in ("forward_kl", "reverse_kl", "tv", "l2")},
                **{f"{k}_sem": div.get(f"{k}_sem", 0.0) for k in ("forward_kl", "reverse_kl", "tv", "l2")},
                "weight_l2": rec.get("weight_l2_from_pi0", float("nan")),
                "representation_drift": div.get("representation_drift", float("nan")),
                "prior_forward_kl": div.get("prior_forward_kl", float("nan")),
                "prior_forward_kl_sem": div.get("prior_forward_kl_sem", float("nan")),
            }
        )
    return points


def fits(points: list[dict[str, Any]]) -> dict[str, Any]:
    y = np.array([p["forgetting"] for p in points], dtype=float)
    out = {}
    for key in METRICS:
        x = np.array([p[key] for p in points], dtype=float)
        ok = np.isfinite(x) & np.isfinite(y)
        out[key] = polyfit_r2(x[ok], y[ok], degree=2)
    return out


def format_r2_difference(value: float) -> str:
    """A signed R² difference to 2 decimals, or to 2 significant digits below 0.01: an interval end of
    -0.0019 decides a verdict and must not print as -0.00."""
    return f"{value:+.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:+.2g}"


def predictor_table(points: list[dict[str, Any]]) -> list[str]:
    """RL's Razor's Table 1 for this study: per predictor, quadratic and monotone fits, in-sample and
    leave-one-run-out R² with a bootstrap interval over runs; then forward KL against each other
    predictor on the same resamples. pi0 is left out (its forgetting is 0 by construction)."""
    pts = [p for p in points if p["method"] != "pi0"]
    y = np.array([p["forgetting"] for p in pts], dtype=float)
    runs = np.array([p["run"] for p in pts])
    lines = [
        "| predictor | quadratic fit | monotone fit |",
        "|---|---|---|",
    ]
    for key, label in measured_metrics(pts).items():
        x = np.array([p[key] for p in pts], dtype=float)
        cells = [assess_predictor(x, y, runs, kind).describe() for kind in ("quadratic", "monotone")]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    n = int(np.isfinite(y).sum())
    lines += ["", f"{n} checkpoints from {len(set(runs.tolist()))} training runs."]
    if not r2_meaningful(n):
        lines.append(
            f"With fewer than {MIN_POINTS_FOR_R2} points R² is not meaningful: no predictor is ranked."
        )
        return lines
    lines += [
        "",
        "| forward KL vs | R² difference (leave-one-run-out, 95% CI over runs) | verdict |",
        "|---|---|---|",
    ]
    kl = np.array([p["forward_kl"] for p in pts], dtype=float)
    for key, label in measured_metrics(pts).items():
        if key == "forward_kl":
            continue
        other = np.array([p[key] for p in pts], dtype=float)
        cmp = compare_predictors(kl, other, y, runs)
        verdict = {"A better": "forward KL better", "B better": f"{label} better"}.get(
            cmp.verdict, cmp.verdict
        )
        ci = cmp.interval
        span = (
            f" [{format_r2_difference(ci.low)}, {format_r2_difference(ci.high)}]"
            if ci is not None and ci.n_valid
            else ""
        )
        lines.append(f"| {label} | {format_r2_difference(cmp.difference)}{span} | {verdict} |")
    return lines + ["", *method_transfer_table(pts)]


def method_transfer_table(points: list[dict[str, Any]]) -> list[str]:
    """Leave-one-method-out R²: does the curve fitted on the other methods forecast a method it never saw?

    RL's Razor's claim is one forgetting-vs-KL curve for every method. Leave-one-run-out keeps a held-out
    run's sibling seeds in the fit, so it tests less. The interval still resamples runs."""
    methods = np.array([p["method"] for p in points])
    if np.unique(methods).size < 2:
        return ["Leave-one-method-out: one method only, nothing to hold out."]
    y = np.array([p["forgetting"] for p in points], dtype=float)
    runs = np.array([p["run"] for p in points])
    lines = [
        "Leave-one-method-out (every run of one method held out together: the curve fitted on the other "
        "methods forecasts that method):",
        "",
        "| predictor | quadratic fit | monotone fit |",
        "|---|---|---|",
    ]
    for key, label in measured_metrics(points).items():
        x = np.array([p[key] for p in points], dtype=float)
        cells = [
            assess_predictor(x, y, runs, kind, groups=methods, group_name="method").describe(
                with_in_sample=False
            )
            for kind in ("quadratic", "monotone")
        ]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return lines


def measured_metrics(points: list[dict[str, Any]]) -> dict[str, str]:
    """The predictors these results hold (results recorded before a predictor existed lack it)."""
    return {k: v for k, v in METRICS.items() if any(np.isfinite(float(p[k])) for p in points)}


def per_method_table(points: list[dict[str, Any]]) -> list[str]:
    """The quadratic fit per predictor within each method: does a predictor that works pooled across methods
    also rank one method's checkpoints (RL's Razor reports both)?"""
    methods = sorted({p["method"] for p in points if p["method"] != "pi0"})
    lines = ["| predictor | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for key, label in measured_metrics([p for p in points if p["method"] != "pi0"]).items():
        cells = []
        for method in methods:
            pts = [p for p in points if p["method"] == method]
            x = np.array([p[key] for p in pts], dtype=float)
            y = np.array([p["forgetting"] for p in pts], dtype=float)
            try:
                cells.append(assess_predictor(x, y, [p["run"] for p in pts], "quadratic").describe())
            except UserError as exc:  # one run with enough points: no out-of-sample R²
                cells.append(str(exc).split(";")[0])
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


# Run counts whose bootstrap has too few distinct resamples (C(2k-1, k): 3 for 2 runs, 10 for 3, 35 for 4)
# for its percentiles to mean much: the report says so under the matched-success table.
FEW_RUNS = (2, 3, 4)


def matched_success_table(
    points: list[dict[str, Any]], levels: tuple[float, ...], *, with_pi0: bool = True
) -> list[str]:
    """Prior-skill success of each method's Pareto frontier (its checkpoints plus pi0) at matched new-task
    success (the paper's comparison), with 95% intervals resampling each method's runs.

    ``with_pi0=False`` builds each frontier from the method's own checkpoints only. Between pi0 and a
    method's first checkpoint the anchored frontier is a straight line to pi0, a mixture no run measured;
    the table without it shows how much of a matched value that line supplies."""
    methods = sorted({p["method"] for p in points if p["method"] != "pi0"})
    # pi0's point belongs to every method's frontier: it is where each starts, reached with no training.
    anchor = pi0_anchor(points) if with_pi0 else None
    header = "| method | " + " | ".join(f"new-task {lv:.0%}" for lv in levels) + " |"
    lines = [header, "|---|" + "---|" * len(levels)]
    for method in methods:
        new, prior, runs = method_points(points, method)
        matched = matched_prior_success(new, prior, runs, levels, anchor=anchor)
        n_runs = len(set(runs))
        one_run = n_runs < 2  # resampling one run has no spread to show
        cells = []
        for value, ci in zip(matched.prior, matched.intervals, strict=True):
            cells.append(
                "outside its frontier"
                if not np.isfinite(value)
                else f"{value:.0%} (1 run: no interval)"
                if one_run
                else f"{value:.0%} [{ci.low:.0%}, {ci.high:.0%}]"
            )
        runs_note = "1 run" if one_run else f"{n_runs} runs"
        lines.append(f"| {method} ({runs_note}) | " + " | ".join(cells) + " |")
    few = sorted({len({p["run"] for p in points if p["method"] == m}) for m in methods} & set(FEW_RUNS))
    if few:
        lines += [
            "",
            f"With {' or '.join(map(str, few))} runs a method's run bootstrap has only "
            f"{' or '.join(str(math.comb(2 * k - 1, k)) for k in few)} distinct resamples and understates the "
            "spread between seeds: read these intervals as lower bounds on the uncertainty.",
        ]
    return lines


def calibrate_from_results(
    document: dict[str, Any], degree: int = 2, confidence: float = 0.9
) -> tuple[Calibration, ForecastValidation]:
    """Forgetting vs forward KL fitted on every evaluated checkpoint of ``document`` (pi0 left out), and
    its leave-one-run-out validation."""
    pi0 = document.get("pi0")
    if not isinstance(pi0, dict) or "hash" not in pi0:
        raise BadInputError(
            "these results predate content hashes, so the calibration could not be tied to its pi0; "
            "re-evaluate them with this version of `vla-razor eval` / `vla-razor razor`"
        )
    pts = [p for p in study_points(document) if p["method"] != "pi0" and np.isfinite(p["forward_kl"])]
    kl = [p["forward_kl"] for p in pts]
    forgetting = [p["forgetting"] for p in pts]
    runs = [p["run"] for p in pts]
    suite = document["suite"]
    calibration = calibrate_forecast(
        kl,
        forgetting,
        runs,
        suite=str(suite["name"]),
        pi0_hash=str(pi0["hash"]),
        degree=degree,
        new_task=str(suite["new_task"]),
    )
    return calibration, validate_forecast(kl, forgetting, runs, degree=degree, confidence=confidence)


def forecast_lines(document: dict[str, Any]) -> list[str]:
    """The report's forecast section: can forgetting be forecast from new-task KL alone, honestly checked?"""
    try:
        calibration, v = calibrate_from_results(document)
    except UserError as exc:
        return [f"No forecast: {exc}"]
    a, b, c = calibration.coefficients
    return [
        f"forgetting ≈ {a:+.4f}·KL² {b:+.4f}·KL {c:+.3f} (OLS over {calibration.n} checkpoints of "
        f"{calibration.n_runs} runs, residual SD {calibration.residual_scale:.3f}).",
        "",
        "Leave-one-run-out check (each run's checkpoints forecast from a fit that never saw the run; "
        "forecasts and intervals clipped to forgetting's range [-1, 1]). A held-out checkpoint is "
        "extrapolated when its KL lies outside the KL range of the runs its fit saw:",
        "",
        f"| held-out checkpoints | forecasts | {v.confidence:.0%} interval coverage (target ≥ 80%) "
        "| mean absolute error | mean interval width |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {score.n} | " + _score_cells(score) + " |"
            for name, score in (
                ("all", v.overall),
                ("KL inside the fit's range", v.within_range),
                ("KL outside it (extrapolated)", v.extrapolated),
            )
        ),
        *(
            ["", f"{v.n_skipped} checkpoints skipped: their fold had too few other checkpoints to fit."]
            if v.n_skipped
            else []
        ),
    ]


def _score_cells(score: ForecastScore) -> str:
    if score.n == 0:
        return "- | - | -"
    return f"{score.coverage:.0%} | {score.mean_abs_error:.3f} | {score.mean_width:.3f}"


def _support_section(points: list[dict[str, Any]]) -> list[str]:
    """The checks of what the data support: fold-by-fold transfer, the method-label baseline, and rank
    correlations within methods (``report_checks``)."""
    pts = [p for p in points if p["method"] != "pi0"]
    if len({p["method"] for p in pts}) < 2 or not r2_meaningful(len(pts)):
        return []
    metrics = measured_metrics(pts)
    return [
        "## One curve across methods? What the data support",
        "",
        *transfer_by_fold_lines(pts, metrics),
        "",
        *method_identity_lines(pts, metrics),
        "",
        *within_method_rank_lines(pts, metrics),
        "",
    ]


def _section(title: str, body: list[str]) -> list[str]:
    """A report section, or nothing when it has no body (a study without those records)."""
    return [f"## {title}", "", *body, ""] if body else []


def write_report(document: dict[str, Any], out_dir: str | Path, results_table: str) -> Path:
    """Plots + report.md in ``out_dir``; everything is derived from ``document`` alone."""
    out = ensure_writable_dir(out_dir, what="report directory")
    suite = document["suite"]
    points = study_points(document)
    metric_fits = fits(points)
    pareto_plot(points, out / "pareto.png", suite["new_task"])
    forgetting_plot(
        points,
        "forward_kl",
        metric_fits["forward_kl"],
        out / "forgetting_vs_forward_kl.png",
        METRICS["forward_kl"],
    )
    for key in ("reverse_kl", "tv", "weight_l2", "prior_forward_kl"):
        forgetting_plot(points, key, metric_fits[key], out / f"forgetting_vs_{key}.png", METRICS[key])
    n_ckpt = len([p for p in points if p["method"] != "pi0"])
    lines = [
        f"# RL's Razor study: suite `{suite['name']}`",
        "",
        f"New task: `{suite['new_task']}`; prior skills: {', '.join(f'`{t}`' for t in suite['prior_tasks'])}. "
        f"{n_ckpt} fine-tuned checkpoints + pi0; N = {document['n_per_task']} held-out episodes per task and policy"
        f"{decode_note(suite)}.",
        "",
        "## Pareto: new-task success vs prior-skill success",
        "",
        "![pareto](pareto.png)",
        "",
        "## Forgetting vs forward KL(pi0‖pi) on new-task states",
        "",
        "![forgetting vs forward KL](forgetting_vs_forward_kl.png)",
        "",
        "## Which metric predicts forgetting? (RL's Razor Table 1 style)",
        "",
        "Out-of-sample R² holds out every checkpoint of one training run at a time; intervals resample runs.",
        "",
        *predictor_table(points),
        "",
        "Within each method (quadratic fit):",
        "",
        *per_method_table(points),
        "",
        *_support_section(points),
        "## Prior-skill success at matched new-task success (Pareto frontiers)",
        "",
        "Levels: 25/50/75%, and 1/3, 2/3 and all of the range every method covers (from pi0's new-task "
        "success to the lowest best new-task success among the methods).",
        "",
        *matched_success_table(points, matched_levels(points)),
        "",
        "Without pi0 as a frontier anchor (each method's frontier from its own checkpoints only; below a "
        "frontier's lowest new-task success a method is held at that checkpoint's prior-skill success):",
        "",
        *matched_success_table(points, matched_levels(points), with_pi0=False),
        "",
        "## New-task learning curves, pooled over seeds",
        "",
        *learning_curve_lines(document),
        "",
        *_section("Fitting the demos: training and held-back loss", demo_loss_lines(document)),
        *_section("Which BC learning rate did best", learning_rate_lines(document)),
        *_section(
            "Where states and labels come from: BC, DAgger, RFT",
            mechanism_lines(points, matched_levels(points)),
        ),
        "## Forecasting forgetting from forward KL alone",
        "",
        *forecast_lines(document),
        "",
    ]
    lines += [
        "",
        "Other metrics: [reverse KL](forgetting_vs_reverse_kl.png), [TV](forgetting_vs_tv.png), "
        "[weight L2](forgetting_vs_weight_l2.png), [prior-state KL](forgetting_vs_prior_forward_kl.png).",
        "",
        "## All policies",
        "",
        results_table,
        "",
        "## Run information",
        "",
        f"- git commit: `{document.get('git_commit')}`",
        f"- versions: `{json.dumps(document.get('versions', {}))}`",
        "",
        *compute_lines(document),
        "",
    ]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))
    with atomic_path(out / "points.json") as tmp:
        tmp.write_text(
            json.dumps({"points": points, "r2": {k: f.r2 for k, f in metric_fits.items()}}, indent=2)
        )
    return out / "report.md"
