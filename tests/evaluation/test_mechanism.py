"""Study 2's reading of BC, DAgger and RFT (``mechanism``), on checkpoints built so each outcome is known."""

from __future__ import annotations

import pytest

from vla_razor.evaluation.frontier import levels_all_reach
from vla_razor.evaluation.mechanism import (
    classify,
    forward_kl_lines,
    mechanism_lines,
    mechanism_reading,
    missing_methods,
)
from vla_razor.evaluation.stats import Bootstrap

PI0 = {"method": "pi0", "run": "pi0", "new_task_success": 0.5, "prior_success": 0.9, "forward_kl": 0.0}
FAST = Bootstrap(n_boot=200)
LEVELS = (0.6, 0.7)


def _runs(method: str, prior_at_top: float, n_runs: int = 3, kl: float = 1.0) -> list[dict]:
    """Checkpoints at new-task success 0.6 / 0.7 / 0.8 per run, prior-skill success falling linearly from
    pi0's 0.9 (at 0.5) to ``prior_at_top`` (at 0.8), each run shifted by at most half a point."""
    points = []
    for r in range(n_runs):
        for new in (0.6, 0.7, 0.8):
            prior = 0.9 + (prior_at_top - 0.9) * (new - 0.5) / 0.3 + 0.005 * (r - 1)
            run = f"{method}_seed{r}"
            points.append(
                {
                    "method": method,
                    "run": run,
                    "new_task_success": new,
                    "prior_success": prior,
                    "forward_kl": kl + r,
                }
            )
    return points


def _study(bc: float, dagger: float, rft: float, dagger_runs: int = 3) -> list[dict]:
    return [PI0, *_runs("bc", bc), *_runs("dagger", dagger, dagger_runs), *_runs("rft", rft)]


@pytest.mark.parametrize(
    ("bc", "dagger", "rft", "expected"),
    [
        (0.3, 0.85, 0.85, "on-policy states"),  # DAgger keeps old skills like RFT
        (0.3, 0.3, 0.85, "labels"),  # DAgger forgets like BC
        (0.3, 0.6, 0.85, "both"),  # halfway: each difference protects part
    ],
)
def test_each_outcome_of_the_rule(bc: float, dagger: float, rft: float, expected: str) -> None:
    reading = mechanism_reading(_study(bc, dagger, rft), LEVELS, bootstrap=FAST)
    assert reading is not None
    assert reading.readings == {True: expected, False: expected} and reading.reading == expected


def test_gaps_are_the_frontiers_difference_at_each_level() -> None:
    # At new-task 0.7 (2/3 of the way to 0.8), DAgger's frontier (run shifts +0.005 on seed 2) sits at
    # 0.9 - 0.3 * 2/3 + 0.005 = 0.705 and BC's at 0.9 - 0.6 * 2/3 + 0.005 = 0.505: a gap of 20 points.
    reading = mechanism_reading(_study(0.3, 0.6, 0.85), LEVELS, bootstrap=FAST)
    assert reading is not None and reading.levels == LEVELS
    assert reading.states_gap[True].gap[1] == pytest.approx(0.2)
    assert reading.labels_gap[True].gap[1] == pytest.approx((0.85 - 0.6) * 2 / 3)


def test_anchorings_that_disagree_read_unclear() -> None:
    # DAgger with checkpoints at new-task 0.8 only, prior 0.5. With pi0, its frontier is the line from pi0
    # (0.77 at 0.6, 0.63 at 0.7), above BC's (0.70, 0.50) and below RFT's: "both". Without pi0 it is held
    # at 0.5 below 0.8, 20 points under BC at 0.6: not "both".
    points = [
        p for p in _study(0.3, 0.5, 0.86) if not (p["method"] == "dagger" and p["new_task_success"] < 0.8)
    ]
    reading = mechanism_reading(points, LEVELS, bootstrap=FAST)
    assert reading is not None and reading.readings[True] == "both" and reading.readings[False] != "both"
    assert reading.reading == "unclear"
    assert "disagree" in "\n".join(mechanism_lines(points, LEVELS, bootstrap=FAST))


def test_overlapping_methods_are_unclear() -> None:
    points = _study(0.5, 0.5, 0.5)
    reading = mechanism_reading(points, LEVELS, bootstrap=FAST)
    assert reading is not None
    assert classify(reading.states_gap[True], reading.labels_gap[True]) == "unclear"


def test_study_without_dagger_has_no_section_and_one_dagger_run_is_not_readable() -> None:
    no_dagger = [p for p in _study(0.3, 0.85, 0.86) if p["method"] != "dagger"]
    assert mechanism_lines(no_dagger, LEVELS) == []
    one_run = _study(0.3, 0.85, 0.86, dagger_runs=1)
    assert missing_methods(one_run) == ["dagger"] and mechanism_reading(one_run, LEVELS) is None
    assert any("fewer than 2 runs of dagger" in line for line in mechanism_lines(one_run, LEVELS))


def test_levels_below_pi0_or_beyond_a_frontier_are_not_compared() -> None:
    points = _study(0.3, 0.85, 0.86)
    frontiers = [
        ([p["new_task_success"] for p in points if p["method"] == m], [0.5] * 9) for m in ("bc", "rft")
    ]
    assert levels_all_reach(frontiers, (0.4, 0.6, 0.8, 0.9), above=0.5) == (0.6, 0.8)
    reading = mechanism_reading(points, (0.4, 0.5, 0.9), bootstrap=FAST)
    assert reading is None  # nothing above pi0's 0.5 that every frontier reaches


def test_forward_kl_counts_only_checkpoints_that_beat_pi0_clustered_by_run() -> None:
    points = [*_study(0.3, 0.85, 0.86), {**_runs("bc", 0.3)[0], "new_task_success": 0.4, "forward_kl": 99.0}]
    lines = forward_kl_lines(points)
    # Runs' KLs are 1, 2, 3 (three checkpoints each): mean 2, SE of three cluster means sd 1 / sqrt(3).
    bc_line = next(line for line in lines if line.startswith("- bc"))
    assert "2.00 ± 0.58 nats over 9 checkpoints from 3 runs" in bc_line


def test_checkpoint_table_gives_each_arm_step_by_step_even_when_the_rule_cannot_be_read() -> None:
    # DAgger below pi0 on the new task at every checkpoint (it lost the new task): no matched level, so
    # the rule is not readable, and the table still shows where DAgger went.
    below = [
        {**p, "new_task_success": 0.1 * (1 + i % 3), "step": 1 + i % 3, "lr": 1e-4}
        for i, p in enumerate(_runs("dagger", 0.4))
    ]
    bc = [
        {**p, "step": 10 * (1 + i % 3), "lr": lr}
        for lr in (1e-5, 1e-4)
        for i, p in enumerate(_runs("bc", 0.3))
    ]
    rft = [{**p, "step": 1 + i % 3, "lr": 3e-5} for i, p in enumerate(_runs("rft", 0.85))]
    points = [PI0, *bc, *below, *rft]
    lines = mechanism_lines(points, LEVELS, bootstrap=FAST)
    assert any(line.startswith("Not readable") for line in lines)
    assert "| pi0 | 0 | - | 50% | 90% | 0 |" in lines
    # DAgger's first checkpoint: new-task 10% in each run; prior 0.9 - 0.5 * (0.6 - 0.5) / 0.3 shifted by
    # -0.005, 0, +0.005 over the runs: 73% (73% to 74%); forward KL 1, 2, 3: 2.00 (1.00 to 3.00).
    assert "| dagger | 1 | 3 | 10% | 73% (73% to 74%) | 2.00 (1.00 to 3.00) |" in lines
    rows = [line.split(" | ")[0] for line in lines if line.startswith("| bc") or line.startswith("| rft")]
    assert rows[0] == "| bc lr 1e-05" and rows[-1] == "| rft"  # BC split by rate, rates ascending
    assert "| bc lr 1e-05 | 10 | 3 | 60% | 70% | 2.00 (1.00 to 3.00) |" in lines  # equal runs: no range
    assert sum(row == "| bc lr 0.0001" for row in rows) == 3


def test_resamples_whose_frontier_stops_short_are_counted_not_hidden() -> None:
    # DAgger: one run reaches new-task 0.8, the other never beats pi0. A resample that draws the second run
    # twice has no DAgger frontier at 0.6 or 0.7, so its gap is undefined: the section says how many
    # resamples the intervals rest on.
    reaching = _runs("dagger", 0.4, n_runs=1)
    stuck = [{**p, "run": "dagger_seed9", "new_task_success": 0.1} for p in _runs("dagger", 0.4, n_runs=1)]
    points = [PI0, *_runs("bc", 0.3), *reaching, *stuck, *_runs("rft", 0.85)]
    lines = mechanism_lines(points, LEVELS, bootstrap=FAST)
    note = next(line for line in lines if line.startswith("Resamples of runs in which every frontier"))
    counts = [
        int(cell.split(": ")[1].split(" of ")[0]) for cell in note.rstrip(".").split(": ", 1)[1].split(", ")
    ]
    assert all(0 < c < FAST.n_boot for c in counts)  # about 3/4 of resamples draw the reaching run
    full = mechanism_lines(_study(0.3, 0.6, 0.85), LEVELS, bootstrap=FAST)
    assert not any(line.startswith("Resamples of runs") for line in full)
