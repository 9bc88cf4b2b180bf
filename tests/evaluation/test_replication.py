"""Replication of RL's Razor's claims between two studies (``evaluation.replication``): the committed study
against itself, against transformed copies of itself, and through `vla-razor razor --compare`."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf

from vla_razor.cli import _translate_flags
from vla_razor.config import ASSETS_DIR
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.claim_checks import comparable_levels
from vla_razor.evaluation.frontier import frontier_prior_at, matched_prior_gap
from vla_razor.evaluation.method_transfer import fold_r2, leave_one_group_out
from vla_razor.evaluation.replication import (
    CLAIMS,
    REPLICATION_FILE,
    ClaimRow,
    load_compared_study,
    replication_report,
    replication_rows,
)
from vla_razor.evaluation.stats import Bootstrap
from vla_razor.evaluation.study import load_results

STUDY = ASSETS_DIR / "studies" / "default"
REPO = Path(__file__).resolve().parents[2]
# Verdict tests that do not check figures against the report use fewer resamples, to stay fast.
QUICK = Bootstrap(n_boot=100)
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")

needs_study = pytest.mark.skipif(not (STUDY / "pi0.json").is_file(), reason="no committed study")


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return load_results(STUDY)


@pytest.fixture(scope="module")
def self_rows(committed: dict[str, Any]) -> list[ClaimRow]:
    return replication_rows(committed, committed)


def _relabelled(document: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """A copy whose checkpoints carry another trainer: the figures stay, the methods they belong to move."""
    out = copy.deepcopy(document)
    for rec in out["policies"].values():
        if rec.get("trainer") in mapping:
            rec["trainer"] = mapping[rec["trainer"]]
    return out


def _without(document: dict[str, Any], trainer: str) -> dict[str, Any]:
    out = copy.deepcopy(document)
    out["policies"] = {k: v for k, v in out["policies"].items() if v.get("trainer") != trainer}
    return out


def _close_numbers(a: str, b: str) -> bool:
    """Same numbers to within one unit of the last printed digit (the bootstrap sums floating point in an
    order that can differ between CPUs, as ``test_committed_study`` allows)."""
    na, nb = NUMBER.findall(a), NUMBER.findall(b)
    return len(na) == len(nb) and all(
        abs(float(x) - float(y)) <= 10.0 ** -max(len(x.partition(".")[2]), len(y.partition(".")[2])) * 1.0001
        for x, y in zip(na, nb, strict=True)
    )


# ---------------------------------------------------------------------------------------------------------
# The statistics added for the comparison
# ---------------------------------------------------------------------------------------------------------


def test_matched_gap_is_the_difference_of_the_two_frontiers() -> None:
    rl = ([0.2, 0.4, 0.3, 0.5], [0.9, 0.85, 0.88, 0.8], ["r0", "r0", "r1", "r1"])
    sft = ([0.3, 0.5, 0.35, 0.6], [0.5, 0.3, 0.45, 0.2], ["s0", "s0", "s1", "s1"])
    levels = [0.25, 0.4, 0.7]
    gap = matched_prior_gap(rl, sft, levels, anchor=(0.1, 0.9), bootstrap=QUICK)
    expected = frontier_prior_at([*rl[0], 0.1], [*rl[1], 0.9], levels) - frontier_prior_at(
        [*sft[0], 0.1], [*sft[1], 0.9], levels
    )
    assert np.allclose(gap.gap[:2], expected[:2]) and np.isnan(gap.gap[2])  # RL never reached 70%
    assert all(ci.low > 0 for ci in gap.intervals[:2]) and gap.intervals[2].n_valid == 0


def test_fold_r2_is_each_folds_error_against_its_spread_around_the_pooled_mean() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, 30)
    groups = np.repeat(["a", "b", "c"], 10)
    y = 0.1 * x + np.where(groups == "c", 0.5, 0.0) + 0.01 * rng.standard_normal(30)
    folds = fold_r2(x, y, groups, "linear")
    score = leave_one_group_out(x, y, groups, "linear")
    held = groups == "c"
    sse_c = score.fold_share["c"] * np.sum((y - y.mean()) ** 2)
    assert folds["c"] == pytest.approx(1 - sse_c / np.sum((y[held] - y.mean()) ** 2))
    # c sits above the line a and b share: forecast worse than the pooled mean; on one line every fold fits.
    assert folds["c"] < 0
    on_one_line = fold_r2(x, 0.1 * x, groups, "linear")
    assert all(v == pytest.approx(1.0) for v in on_one_line.values())


# ---------------------------------------------------------------------------------------------------------
# The committed study against itself and against transformed copies
# ---------------------------------------------------------------------------------------------------------


@needs_study
def test_a_study_against_itself_replicates_every_finding_it_made(self_rows: list[ClaimRow]) -> None:
    assert [row.claim for row in self_rows] == list(CLAIMS)
    for row in self_rows:
        assert row.study_a == row.study_b, row.claim.text
        decisive = row.study_a.outcome in ("holds", "fails")
        assert row.verdict == ("replicated" if decisive else "inconclusive"), row.claim.text
    # Study 1's findings (README "What it means"): RL forgets less at matched success; one forward-KL curve
    # across methods and forward KL as the best predictor are not reproduced; drift transfers best.
    outcomes = {row.claim.key: row.study_a.outcome for row in self_rows}
    assert outcomes == {
        "matched": "holds",
        "one_curve": "fails",
        "forward_kl_best": "fails",
        "drift_best": "holds",
        "prior_kl": "holds",
    }


@needs_study
def test_the_figures_compared_are_the_reports_own(self_rows: list[ClaimRow]) -> None:
    report = (STUDY / "report.md").read_text().splitlines()
    # The report's quadratic leave-one-method-out table (fold by fold): its "R² clipped" cell for forward KL.
    quadratic = report.index("Quadratic fit:")
    row = next(line for line in report[quadratic:] if line.startswith("| forward KL(pi0‖pi) on new-task"))
    clipped = row.split("|")[3].strip()
    one_curve = next(r for r in self_rows if r.claim.key == "one_curve").study_a.figures
    found = re.search(r"R² (\S+ \[[^]]+\])", one_curve)
    assert found and _close_numbers(found.group(1), clipped)
    # The matched-success table of the report, with pi0, at 25% new-task success.
    head = next(i for i, line in enumerate(report) if line.startswith("| method | new-task"))
    column = report[head].split("|").index(" new-task 25% ")
    bc_report = next(line for line in report[head:] if line.startswith("| bc (")).split("|")[column]
    details = next(r for r in self_rows if r.claim.key == "matched").study_a.details
    head = next(i for i, line in enumerate(details) if line.startswith("| method | new-task"))
    column = details[head].split("|").index(" new-task 25% ")
    bc_here = next(line for line in details[head:] if line.startswith("| bc (")).split("|")[column]
    assert _close_numbers(bc_here, bc_report)


@needs_study
def test_rl_and_sft_relabelled_flip_the_matched_success_claim(committed: dict[str, Any]) -> None:
    # BC's checkpoints now claim to be PPO's and PPO's BC's (RFT and BC+KL likewise): RL forgets more.
    swapped = _relabelled(committed, {"ppo": "bc", "bc": "ppo", "rft": "bc_kl", "bc_kl": "rft"})
    matched = replication_rows(committed, swapped, bootstrap=QUICK)[0]
    assert matched.claim.key == "matched"
    assert (matched.study_a.outcome, matched.study_b.outcome) == ("holds", "fails")
    assert matched.verdict == "not replicated"


@needs_study
def test_a_study_lacking_a_method_is_inconclusive_and_says_why(committed: dict[str, Any]) -> None:
    rows = replication_rows(committed, _without(committed, "ppo"), bootstrap=QUICK)
    assert all(row.verdict == "inconclusive" for row in rows)
    assert rows[0].study_b.outcome == "untestable" and "no ppo runs" in rows[0].reason
    assert all("study B lacks ppo" in row.reason for row in rows[1:])


def _with_study2_methods(document: dict[str, Any]) -> dict[str, Any]:
    """Study 2's layout on study 1's figures: BC at a second learning rate (runs named as study 2 names them)
    and DAgger, a method study 1 lacks."""
    out = copy.deepcopy(document)
    for pid, rec in document["policies"].items():
        run, _, step = pid.partition("/")
        if rec.get("trainer") == "bc":
            out["policies"][f"{run.replace('lr0.0001', 'lr1e-05')}/{step}"] = {**rec, "lr": 1e-05}
        elif rec.get("trainer") == "bc_kl":
            out["policies"][f"{run.replace('bc_kl', 'dagger')}/{step}"] = {**rec, "trainer": "dagger"}
    return out


@needs_study
def test_bc_at_several_learning_rates_is_one_method_and_extra_methods_stand_beside(
    committed: dict[str, Any],
) -> None:
    study2 = _with_study2_methods(committed)
    text = replication_report(committed, study2, ("one", "two"), bootstrap=QUICK)
    assert "bc (6 runs)" in text and "dagger (3 runs)" in text and "Only in study B: dagger." in text
    rows = replication_rows(committed, study2, bootstrap=QUICK)
    assert rows[0].verdict == "replicated"  # BC's extra learning rate adds the same frontier again
    assert not any("lacks" in row.reason for row in rows)
    assert any(line.startswith("| dagger (3 runs) |") for line in rows[0].study_b.details)


@needs_study
def test_each_study_is_judged_at_its_own_levels(committed: dict[str, Any]) -> None:
    """A study whose success levels never meet the reference's (every policy 60 points better on the new
    task) is judged at its own levels: the same frontiers, shifted, give the same finding."""
    shifted = copy.deepcopy(committed)
    for rec in shifted["policies"].values():
        rec["new_task_success"] = min(1.0, rec["new_task_success"] + 0.6)
    rows = replication_rows(committed, shifted, bootstrap=QUICK)
    assert rows[0].study_b.outcome in ("holds", "unclear")
    assert rows[0].verdict in ("replicated", "inconclusive")
    assert not comparable_levels([{"method": "pi0", "new_task_success": 0.9, "prior_success": 0.9}], [0.5])


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------


def test_compare_flag_is_sugar_for_the_override() -> None:
    assert _translate_flags(["--from-results", "a", "--compare", "b", "x=1"]) == [
        "from_results=a",
        "compare=b",
        "x=1",
    ]
    assert _translate_flags(["--compare=b"]) == ["compare=b"]
    with pytest.raises(SystemExit, match="--compare needs"):
        _translate_flags(["--compare"])


def test_compare_needs_from_results_and_a_study(tmp_path: Path) -> None:
    from vla_razor.commands.razor import run

    with pytest.raises(BadInputError, match="needs --from-results"):
        run(OmegaConf.create({"from_results": None, "compare": str(tmp_path)}))
    with pytest.raises(MissingFileError, match="^compare: no results.json or recorded study"):
        load_compared_study(tmp_path / "nowhere")


@needs_study
def test_compare_refuses_a_study_of_pi0_alone(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    shutil.copy(STUDY / "pi0.json", tmp_path / "pi0.json")
    with pytest.raises(BadInputError, match="holds no fine-tuned checkpoint"):
        load_compared_study(tmp_path)


def _small_study(root: Path, runs: list[str]) -> Path:
    """pi0 and the last checkpoint of a few of the committed study's runs: a recorded study whose report
    rebuilds in seconds (below 10 checkpoints the report ranks no predictor)."""
    (root / "runs").mkdir(parents=True)
    shutil.copy(STUDY / "pi0.json", root / "pi0.json")
    for run in runs:
        unit = json.loads((STUDY / "runs" / f"{run}.json").read_text())
        last = max(unit["policies"])
        unit["policies"] = {last: unit["policies"][last]}
        (root / "runs" / f"{run}.json").write_text(json.dumps(unit))
    return root


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from vla_razor.cli import main; main()", *args]
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


@needs_study
def test_razor_compare_writes_and_prints_replication_md(tmp_path: Path) -> None:
    runs = [f"{m}_seed{seed}" for m in ("ppo_lr2e-05", "rft_lr3e-05", "bc_lr0.0001") for seed in (0, 1)]
    a = _small_study(tmp_path / "a", runs)
    b = _small_study(tmp_path / "b", [r for r in runs if not r.startswith("rft")])
    out = _cli("razor", "--from-results", str(a), f"--compare={b}", f"hydra.run.dir={tmp_path}/h")
    assert out.returncode == 0, out.stderr[-2000:]
    text = (a / REPLICATION_FILE).read_text()
    assert "| claim | study A | study B | verdict |" in text and "## Rules" in text
    assert text.strip() in out.stdout
    matched = next(line for line in text.splitlines() if line.startswith("| RL forgets less"))
    assert (
        matched.endswith("|")
        and "**inconclusive**: study B cannot test it: the study has no rft runs" in matched
    )

    missing = _cli(
        "razor",
        "--from-results",
        str(a),
        "--compare",
        str(tmp_path / "nowhere"),
        f"hydra.run.dir={tmp_path}/h2",
    )
    assert missing.returncode != 0
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("error: compare: no results.json or recorded study")
    )
