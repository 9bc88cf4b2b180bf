"""The study report on synthetic results: predictors table with out-of-sample R², verdicts, the
point-count guard, and the matched-success table."""

from __future__ import annotations

import numpy as np
import pytest

from vla_razor.evaluation.study import (
    compute_lines,
    format_r2_difference,
    matched_levels,
    predictor_table,
    study_document,
    study_points,
    write_report,
    write_study_unit,
)


def _document(n_runs_per_method: int, steps: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    policies = {}
    zero = {"forward_kl": 0.0, "reverse_kl": 0.0, "tv": 0.0, "l2": 0.0}
    policies["pi0"] = _record(0.1, 0.9, 0.0, zero, 0.0, None)
    for method, drift in (("ppo", 0.5), ("bc", 2.0)):
        for r in range(n_runs_per_method):
            for s in range(1, steps + 1):
                kl = drift * s * (1 + 0.2 * rng.standard_normal())
                forgetting = 0.08 * kl + 0.02 * rng.standard_normal()
                div = {"forward_kl": kl, "reverse_kl": kl * 1.1, "tv": kl / 10, "l2": kl / 20}
                new = min(0.95, 0.1 + 0.2 * s)
                policies[f"{method}_seed{r}/step_{s:06d}"] = _record(
                    new, 0.9 - forgetting, forgetting, div, float(rng.uniform(0, 5)), method
                )
    return {
        "suite": {"name": "synthetic", "new_task": "t", "prior_tasks": ["a", "b"]},
        "n_per_task": 52,
        "policies": policies,
    }


def _record(new, prior, forgetting, div, wl2, trainer) -> dict:
    return {
        "new_task_success": new,
        "new_task_success_sem": 0.05,
        "prior_success": prior,
        "prior_success_sem": 0.05,
        "forgetting": {"mean": forgetting, "mean_sem": 0.03},
        "divergence": div,
        "weight_l2_from_pi0": wl2,
        "trainer": trainer,
    }


def test_points_name_their_training_run() -> None:
    runs = {p["policy"]: p["run"] for p in study_points(_document(1, 2))}
    assert runs["ppo_seed0/step_000002"] == "ppo_seed0" and runs["pi0"] == "pi0"


def test_predictor_table_reports_out_of_sample_r2_and_verdicts(tmp_path) -> None:
    doc = _document(2, 3)  # 12 checkpoints, 4 runs
    lines = predictor_table(study_points(doc))
    text = "\n".join(lines)
    assert "leave-one-run-out" in text and "CI over runs" in text
    assert "12 checkpoints from 4 training runs." in text
    kl_row = next(line for line in lines if line.startswith("| forward KL"))
    assert "not meaningful" not in kl_row
    start = (
        lines.index("| forward KL vs | R² difference (leave-one-run-out, 95% CI over runs) | verdict |") + 2
    )
    rows = lines[start : lines.index("", start)]
    assert len(rows) == 4  # every other predictor, each with a verdict
    # A verdict names the predictor that wins by its label (as in the row), or says inconclusive.
    assert all(
        r.split("|")[-2].strip() in {"inconclusive", "forward KL better", f"{r.split('|')[1].strip()} better"}
        for r in rows
    )
    # Forgetting is built from KL; weight L2 is noise: its R² difference favours KL.
    weight_row = next(r for r in rows if r.startswith("| L2 distance of weights"))
    assert float(weight_row.split("|")[2].split()[0]) > 0.5
    # Then the harder test of one curve for every method: each method held out whole.
    transfer = lines[lines.index("| predictor | quadratic fit | monotone fit |", start) + 2 :]
    assert len(transfer) == 5 and all(r.count("leave-one-method-out") == 2 for r in transfer)
    assert all("in-sample" not in r for r in transfer)
    report = write_report(doc, tmp_path, "(table)").read_text()
    assert (
        "matched new-task success" in report and "| ppo (2 runs) |" in report and "| bc (2 runs) |" in report
    )
    # Two runs give a run bootstrap of 3 distinct resamples (C(3, 2)): the report says its intervals are rough.
    assert "With 2 runs a method's run bootstrap has only 3 distinct resamples" in report


def test_few_points_are_not_ranked() -> None:
    text = "\n".join(predictor_table(study_points(_document(1, 2))))  # 4 checkpoints
    assert "not meaningful" in text and "no predictor is ranked" in text
    assert "verdict" not in text


def test_report_has_per_method_fits_and_forecast_section(tmp_path) -> None:
    doc = _document(3, 4)  # 24 checkpoints, 3 runs per method
    doc["pi0"] = {"source": "asset:pi0_tiny", "hash": "sha256:" + "1" * 64}
    text = write_report(doc, tmp_path, "table").read_text()
    assert "Within each method (quadratic fit):" in text and "| predictor | bc | ppo |" in text
    assert "Leave-one-run-out check" in text and "90% interval coverage" in text


def test_matched_levels_include_the_range_every_method_covers() -> None:
    points = [
        {"method": "pi0", "new_task_success": 0.1},
        {"method": "ppo", "new_task_success": 0.4},
        {"method": "bc", "new_task_success": 0.7},
    ]
    # Common range 0.1..0.4 (ppo's best): its thirds 0.2, 0.3, 0.4, beside the fixed 25/50/75%.
    assert matched_levels(points) == pytest.approx((0.2, 0.25, 0.3, 0.4, 0.5, 0.75))
    # The top level is the lowest best itself, not that best rounded up past it (16/52 = 0.30769...).
    points[1]["new_task_success"] = 16 / 52
    levels = matched_levels(points)
    assert 16 / 52 in levels and not any(16 / 52 < level < 0.5 for level in levels)
    assert matched_levels(points[:1]) == (0.25, 0.5, 0.75)


def test_recorded_spans_give_the_wall_time_units_covered_together(tmp_path) -> None:
    # Three units with spans: a (10:00-11:00) and b (10:30-12:00) ran at once; c (13:00-13:30) alone. Their
    # union is 2.5 h of wall time against 3.0 h summed; a and b ran beside another unit.
    doc = {"suite": {"name": "s"}, "pi0": {"hash": "sha256:a"}, "policies": {"pi0": {}}}
    study = tmp_path / "study"
    write_study_unit(study, "pi0", doc, ["pi0"])
    spans = {"a": ("10:00", "11:00"), "b": ("10:30", "12:00"), "c": ("13:00", "13:30")}
    for run, (start, stop) in spans.items():
        unit = {**doc, "policies": {f"ppo_{run}/step_1": {"trainer": "ppo"}}}
        span = [f"2026-12-06T{start}:00+00:00", f"2026-12-06T{stop}:00+00:00"]
        cost = {"machine": "AMD EPYC, 2 usable cores", "train_s": 60.0, "eval_s": 60.0, "span_utc": span}
        write_study_unit(study, f"ppo_{run}", unit, [f"ppo_{run}/step_1"], cost)
    lines = compute_lines(study_document(study))
    assert (
        "3 runs recorded the span of the process that ran them: 2.5 h of wall time together, against 3.0 h "
        "summed. 2 ran at the same time as another unit (Ray or SLURM units); on one machine, their times "
        "above include the sharing."
    ) in lines
    # Units recorded before spans existed add no such line.
    assert not any(
        "span" in line for line in compute_lines({"compute": {"x": {"eval_s": 1.0, "method": "bc"}}})
    )


def test_compute_is_summed_per_method_over_the_timed_units(tmp_path) -> None:
    # Two PPO units timed (train 1800 + 1800 s, eval 1800 + 5400 s), one BC unit recorded before timing, and
    # one RFT unit whose run was trained before the process that recorded it (evaluation timed alone).
    runs = ("ppo_0", "ppo_1", "bc__0", "rft_0")
    doc = {
        "suite": {"name": "s"},
        "pi0": {"hash": "sha256:a"},
        "policies": {"pi0": {}, **{f"{r}/step_1": {"trainer": r[:3]} for r in runs}},
    }
    study = tmp_path / "study"
    write_study_unit(study, "pi0", doc, ["pi0"])
    for run, eval_s in (("ppo_0", 1800.0), ("ppo_1", 5400.0)):
        cost = {"machine": "AMD EPYC, 2 usable cores", "train_s": 1800.0, "eval_s": eval_s}
        write_study_unit(study, run, doc, [f"{run}/step_1"], cost)
    write_study_unit(study, "bc__0", doc, ["bc__0/step_1"])
    write_study_unit(
        study, "rft_0", doc, ["rft_0/step_1"], {"machine": "AMD EPYC, 2 usable cores", "eval_s": 900.0}
    )
    lines = compute_lines(study_document(study))
    assert lines[0].startswith("Wall time recorded for 3 of 4 runs")
    assert "| ppo | 1.0 h (2 runs) | 2.0 h (2 runs) |" in lines
    assert "| rft | - | 0.2 h (1 run) |" in lines  # not "0.0 h" of training: it was never timed
    assert not any(line.startswith("| bc") for line in lines)
    assert lines[-1] == "On: AMD EPYC, 2 usable cores."
    # Results that are not a recorded study have no compute section at all.
    assert compute_lines({"policies": {}}) == []


def test_small_r2_differences_keep_their_sign_and_digits() -> None:
    # An interval end of -0.0019 makes a verdict; printed as "-0.00" the table would contradict it.
    assert [format_r2_difference(v) for v in (-0.0019, 0.0, 0.5, -187.6848)] == [
        "-0.0019",
        "+0.00",
        "+0.50",
        "-187.68",
    ]
