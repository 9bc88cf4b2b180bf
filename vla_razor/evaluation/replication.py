"""Does a second RL's Razor study replicate the first? One row per claim of study 1's findings.

``replication_rows`` takes two loaded studies (``study.load_results``): the reference (study A) and the
replication (study B). For each claim, each study gets an outcome under the claim's rule
(``claim_checks``: holds, fails, unclear, or untestable), and the verdict compares them (``verdict``):

- replicated: both studies are decisive (holds or fails) and agree. Study B reaches study A's finding,
  whichever way it went: a claim study A found to fail is replicated when it fails in study B too.
- not replicated: both are decisive and disagree.
- inconclusive: either study is unclear or cannot test the claim, the two share no matched new-task
  success level (claim 1), or study B lacks a method study A's finding rests on (claims 2-5).

Study B may hold methods study A lacks (DAgger, BC at several learning rates): its figures are the ones its
own report prints, with those methods in, and the notes name them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.claim_checks import (
    R2_THRESHOLD,
    RL_METHODS,
    SFT_METHOD,
    Finding,
    Points,
    PredictorFigures,
    claim1_missing,
    comparable_levels,
    drift_transfers_best_finding,
    forward_kl_best_finding,
    matched_success_finding,
    methods_of,
    one_curve_finding,
    predictor_figures,
    prior_state_kl_finding,
)
from vla_razor.evaluation.stats import DEFAULT_BOOTSTRAP, Bootstrap
from vla_razor.evaluation.study import load_results, matched_levels, study_points
from vla_razor.io_utils import atomic_path, ensure_writable_dir

Verdict = Literal["replicated", "not replicated", "inconclusive"]
REPLICATION_FILE = "replication.md"

VERDICT_RULE = (
    "Each study gets an outcome per claim under the claim's rule: holds, fails, unclear (an interval "
    "straddles the rule's threshold) or untestable (the study lacks what the claim needs). **replicated**: "
    "both studies are decisive (holds or fails) and agree, so study B reaches study A's finding whichever "
    "way it went; **not replicated**: both are decisive and disagree; **inconclusive**: either study is "
    "unclear or untestable, the studies share no matched new-task success level (claim 1), or study B lacks "
    "a method study A's finding rests on (claims 2-5). All intervals are 95%, resampling training runs."
)

Check = Callable[[PredictorFigures | None, Points], Finding]


@dataclass(frozen=True)
class Claim:
    key: str
    text: str
    rule: str


MATCHED = Claim(
    "matched",
    "RL forgets less at matched new-task success",
    f"RL = {' and '.join(RL_METHODS)}, SFT = {SFT_METHOD} (every learning rate: one frontier); other methods "
    "are shown beside. Each study at its own levels (the report's matched levels above pi0's new-task "
    "success that every RL method's and SFT's frontier reaches; two suites' levels need not meet), the gap RL "
    "minus SFT in prior-skill success, with an interval resampling each method's runs. With pi0 as the "
    "frontiers' anchor and without it: holds if every gap's interval lies above 0 both ways; fails if some "
    "gap's interval lies below 0, or every gap is negative, either way; unclear otherwise.",
)
ONE_CURVE = Claim(
    "one_curve",
    "One forgetting-vs-KL curve holds across methods",
    "Forward KL's leave-one-method-out R² of the quadratic fit, forecasts clipped to forgetting's range "
    "[-1, 1] (the report's \"R² clipped\"), and each held-out method's own R² (its forecast error against "
    "its spread around the mean of all checkpoints), intervals resampling runs within each method. Holds if "
    f"the pooled interval lies at or above {R2_THRESHOLD} and every held-out method's lies at or above 0; "
    f"fails if the pooled interval lies below {R2_THRESHOLD} or some method's below 0; unclear otherwise.",
)
FORWARD_KL_BEST = Claim(
    "forward_kl_best",
    "Forward KL is the best predictor of forgetting",
    "Among the predictors the report compares. Leave-one-run-out: the report's paired R² differences "
    "(quadratic), forward KL minus each other predictor; best if every difference's interval lies above 0, "
    "not best if one lies below 0. Leave-one-method-out (clipped, quadratic): best if forward KL's interval "
    "lies above every other predictor's, not best if another's lies above it. Holds if best both ways; fails "
    "if not best either way; unclear otherwise (intervals overlap with the best).",
)
DRIFT_BEST = Claim(
    "drift_best",
    "Representation drift transfers best across methods",
    "Leave-one-method-out R² (clipped, quadratic) of representation drift against every other predictor's: "
    "holds if drift's interval lies above every other's; fails if another's lies above drift's; unclear "
    "when they overlap.",
)
PRIOR_KL = Claim(
    "prior_kl",
    "Prior-state KL (KL on prior-task states) predicts forgetting",
    "Across methods: its leave-one-method-out R² (clipped, quadratic); within methods: its partial "
    "correlation with forgetting beyond the method label (ANCOVA, intervals resampling runs within each "
    f"method). Holds if the R² interval lies at or above {R2_THRESHOLD} and the partial correlation's above "
    f"0; fails if the R² interval lies below {R2_THRESHOLD} or the partial correlation's below 0; unclear "
    "otherwise.",
)
PREDICTOR_CLAIMS: tuple[tuple[Claim, Check], ...] = (
    (ONE_CURVE, one_curve_finding),
    (FORWARD_KL_BEST, forward_kl_best_finding),
    (DRIFT_BEST, drift_transfers_best_finding),
    (PRIOR_KL, prior_state_kl_finding),
)
CLAIMS = (MATCHED, *(claim for claim, _ in PREDICTOR_CLAIMS))


@dataclass(frozen=True)
class ClaimRow:
    claim: Claim
    study_a: Finding
    study_b: Finding
    verdict: Verdict
    reason: str


def verdict(a: Finding, b: Finding, *, blocker: str | None = None) -> tuple[Verdict, str]:
    """The verdict rule (``VERDICT_RULE``); ``blocker`` is a reason the two studies cannot be compared on
    this claim even where both are decisive."""
    for name, finding in (("A", a), ("B", b)):
        if finding.outcome == "untestable":
            return "inconclusive", f"study {name} cannot test it: {finding.reason}"
    if blocker:
        return "inconclusive", blocker
    if a.outcome == "unclear":
        return "inconclusive", "study A is not decisive, so there is no finding to replicate"
    if b.outcome == "unclear":
        return "inconclusive", "study B is not decisive"
    if a.outcome == b.outcome:
        return "replicated", f"the claim {a.outcome} in both studies"
    return "not replicated", f"the claim {a.outcome} in study A and {b.outcome} in study B"


def _matched_row(points_a: Points, points_b: Points, bootstrap: Bootstrap, *, same: bool) -> ClaimRow:
    # Each study is judged at the new-task success levels its own methods reach: the claim is qualitative
    # (at equal new-task success, RL keeps more prior skill than SFT), and two suites' levels need not
    # meet (study 1's stop at 33%; pi0 v2 starts near 60% sampled on its new task).
    own_a, own_b = (
        comparable_levels(p, matched_levels(p)) if not claim1_missing(p) else () for p in (points_a, points_b)
    )
    a = matched_success_finding(points_a, own_a, bootstrap=bootstrap)
    b = a if same else matched_success_finding(points_b, own_b, bootstrap=bootstrap)
    return ClaimRow(MATCHED, a, b, *verdict(a, b, blocker=None))


def _levels_text(levels: tuple[float, ...]) -> str:
    return ", ".join(f"{lv:.0%}" for lv in levels) or "none"


def replication_rows(
    reference: dict[str, Any], replication: dict[str, Any], *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
) -> list[ClaimRow]:
    """One row per claim (``CLAIMS``): study A's (``reference``) and study B's findings and the verdict."""
    points_a, points_b = study_points(reference), study_points(replication)
    # The same study twice (a self-check) is scored once: its figures are the same by construction.
    same = replication is reference or replication == reference
    rows = [_matched_row(points_a, points_b, bootstrap, same=same)]
    figures_a = predictor_figures(points_a, bootstrap=bootstrap)
    figures_b = figures_a if same else predictor_figures(points_b, bootstrap=bootstrap)
    lacking = [m for m in methods_of(points_a) if m not in methods_of(points_b)]
    blocker = f"study B lacks {', '.join(lacking)}, which study A's finding rests on" if lacking else None
    for claim, check in PREDICTOR_CLAIMS:
        a = check(figures_a, points_a)
        b = a if same else check(figures_b, points_b)
        rows.append(ClaimRow(claim, a, b, *verdict(a, b, blocker=blocker)))
    return rows


def _cell(finding: Finding) -> str:
    said = finding.reason if finding.outcome == "untestable" else finding.figures
    return f"**{finding.outcome}**: {said}"


def _row(row: ClaimRow) -> str:
    cells = [row.claim.text, _cell(row.study_a), _cell(row.study_b), f"**{row.verdict}**: {row.reason}"]
    return "| " + " | ".join(cells) + " |"


def describe_study(name: str, document: dict[str, Any]) -> str:
    points = [p for p in study_points(document) if p["method"] != "pi0"]
    suite = document["suite"]
    runs = {m: len({p["run"] for p in points if p["method"] == m}) for m in methods_of(points)}
    methods = ", ".join(f"{m} ({n} run{'s' if n != 1 else ''})" for m, n in runs.items())
    return (
        f"`{name}`: suite `{suite.get('name')}`, new task `{suite.get('new_task')}`, "
        f"{len(points)} checkpoints; {methods or 'no fine-tuned checkpoints'}"
    )


def replication_report(
    reference: dict[str, Any],
    replication: dict[str, Any],
    names: tuple[str, str],
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> str:
    """replication.md: the table claim | study A | study B | verdict, the rules, and the details."""
    rows = replication_rows(reference, replication, bootstrap=bootstrap)
    methods_a = set(methods_of(study_points(reference)))
    methods_b = set(methods_of(study_points(replication)))
    lines = [
        "# Replication of RL's Razor's claims: study A against study B",
        "",
        f"- Study A (reference): {describe_study(names[0], reference)}.",
        f"- Study B (replication): {describe_study(names[1], replication)}.",
    ]
    if methods_b - methods_a:
        lines.append(
            f"- Only in study B: {', '.join(sorted(methods_b - methods_a))}. Its figures include them, as its "
            "own report does; claim 1 shows them beside the RL-SFT comparison only."
        )
    if methods_a - methods_b:
        lines.append(
            f"- Only in study A: {', '.join(sorted(methods_a - methods_b))}. Claims resting on them are "
            "inconclusive."
        )
    lines += [
        "",
        "| claim | study A | study B | verdict |",
        "|---|---|---|---|",
        *(_row(row) for row in rows),
        "",
        "## Rules",
        "",
        VERDICT_RULE,
        "",
        *(f"- *{claim.text}*: {claim.rule}" for claim in CLAIMS),
        "",
        "## Details",
        "",
    ]
    for row in rows:
        for name, finding in (("A", row.study_a), ("B", row.study_b)):
            if finding.details:
                lines += [f"### {row.claim.text}: study {name}", "", *finding.details]
    return "\n".join(lines).rstrip() + "\n"


def load_compared_study(path: str | Path) -> dict[str, Any]:
    """The study named by ``compare``, with errors that say so; one of pi0 alone is refused."""
    try:
        document = load_results(path)
    except MissingFileError as exc:
        raise MissingFileError(f"compare: {exc}") from None
    except BadInputError as exc:
        raise BadInputError(f"compare: {exc}") from None
    if not any(pid != "pi0" for pid in document.get("policies", {})):
        raise BadInputError(
            f"compare: {str(path)!r} holds no fine-tuned checkpoint, only pi0: nothing to compare"
        )
    return document


def write_replication(
    reference: dict[str, Any],
    replication: dict[str, Any],
    out_dir: str | Path,
    names: tuple[str, str],
    *,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> Path:
    """replication.md in ``out_dir`` (``replication_report``); returns its path."""
    out = ensure_writable_dir(out_dir, what="report directory")
    text = replication_report(reference, replication, names, bootstrap=bootstrap)
    with atomic_path(out / REPLICATION_FILE) as tmp:
        tmp.write_text(text)
    return out / REPLICATION_FILE
