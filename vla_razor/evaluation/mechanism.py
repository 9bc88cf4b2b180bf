"""Where the training states and labels come from: the reading study 2 exists for (issue 21, item 3).

Three methods share the BC loss (token cross-entropy on action tokens) and differ only in their data:

- ``bc``: demo states, expert labels;
- ``dagger``: the policy's own (on-policy) states, expert labels;
- ``rft``: on-policy states, the policy's own successful actions.

At matched new-task success, the prior-skill success of their Pareto frontiers says which difference
protects old skills. The rule, fixed before any DAgger unit existed, reads two gaps at every level above
pi0's new-task success that all three frontiers reach, each with a 95% interval resampling each method's
runs (``frontier.matched_prior_gap``), with pi0 as the frontiers' anchor and without it:

- DAgger minus BC: what on-policy states add, the labels held fixed (expert);
- RFT minus DAgger: what the policy's own labels add, the states held fixed (on-policy).

Outcomes: **on-policy states** (DAgger keeps old skills like RL, "Retaining by Doing") when every
DAgger-minus-BC interval lies above 0 and no RFT-minus-DAgger interval does; **labels** (DAgger forgets
like BC: how far the labels sit from pi0 decides, RL's Razor) when every RFT-minus-DAgger interval lies
above 0 and no DAgger-minus-BC interval does; **both** when both gaps' intervals all lie above 0;
**unclear** otherwise. The reading is decisive only when the anchored and unanchored frontiers agree.
Forward KL(pi0||pi) on new-task states of the checkpoints that beat pi0 on the new task is shown beside,
because RL's Razor explains forgetting by it, and each arm step by step (``checkpoint_lines``), because an
arm that never beats pi0 on the new task leaves the rule nothing to read.

BC's frontier pools its runs at every learning rate (as the report's matched-success table and RL's
Razor's SFT frontier do), while DAgger runs at one: the comparison gives BC the best of its sweep, which
leans against finding that on-policy states protect.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vla_razor.evaluation.frontier import MatchedGap, levels_all_reach, matched_prior_gap
from vla_razor.evaluation.points import Points, method_points, pi0_anchor, pi0_floor
from vla_razor.evaluation.stats import DEFAULT_BOOTSTRAP, Bootstrap, clustered_mean

Reading = Literal["on-policy states", "labels", "both", "unclear"]

SOURCES: dict[str, tuple[str, str]] = {
    "bc": ("demo states", "expert labels"),
    "dagger": ("on-policy states", "expert labels"),
    "rft": ("on-policy states", "its own successful actions"),
}
STATES_GAP = ("dagger", "bc")  # on-policy states' effect, labels fixed
LABELS_GAP = ("rft", "dagger")  # own labels' effect, states fixed

READING_TEXT: dict[Reading, str] = {
    "on-policy states": "DAgger keeps old skills like RFT: on-policy states are the mechanism "
    "(Retaining by Doing)",
    "labels": "DAgger forgets like BC: on-policy states alone do not protect old skills; where the labels "
    "sit relative to pi0 does (RL's Razor)",
    "both": "on-policy states protect part of the old skills and the policy's own labels the rest",
    "unclear": "some interval contains 0 where the rule needs a decision",
}


@dataclass(frozen=True)
class MechanismReading:
    levels: tuple[float, ...]
    states_gap: dict[bool, MatchedGap]  # keyed by with_pi0
    labels_gap: dict[bool, MatchedGap]
    readings: dict[bool, Reading]

    @property
    def reading(self) -> Reading:
        """The reading when anchored and unanchored frontiers agree, else ``unclear``."""
        with_pi0, without = self.readings[True], self.readings[False]
        return with_pi0 if with_pi0 == without else "unclear"


def missing_methods(points: Points) -> list[str]:
    """The three methods this reading needs that ``points`` lack, or have from fewer than two runs (a run
    bootstrap of one run has no spread)."""
    return [m for m in SOURCES if len({p["run"] for p in points if p["method"] == m}) < 2]


def _all_above_zero(gap: MatchedGap) -> bool:
    return bool(gap.intervals) and all(ci.n_valid and ci.low > 0 for ci in gap.intervals)


def _any_above_zero(gap: MatchedGap) -> bool:
    return any(ci.n_valid and ci.low > 0 for ci in gap.intervals)


def classify(states_gap: MatchedGap, labels_gap: MatchedGap) -> Reading:
    """The module docstring's rule for one anchoring."""
    states, labels = _all_above_zero(states_gap), _all_above_zero(labels_gap)
    if states and labels:
        return "both"
    if states and not _any_above_zero(labels_gap):
        return "on-policy states"
    if labels and not _any_above_zero(states_gap):
        return "labels"
    return "unclear"


def _gap(
    points: Points,
    pair: tuple[str, str],
    levels: tuple[float, ...],
    bootstrap: Bootstrap,
    anchor: tuple[float, float] | None,
) -> MatchedGap:
    """The first method's matched prior-skill success minus the second's."""
    first, second = pair
    return matched_prior_gap(
        method_points(points, first),
        method_points(points, second),
        levels,
        bootstrap=bootstrap,
        anchor=anchor,
    )


def mechanism_reading(
    points: Points, levels: Sequence[float], *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
) -> MechanismReading | None:
    """The rule applied at the ``levels`` above pi0's new-task success that all three frontiers reach;
    None when a method is missing (``missing_methods``) or no level is shared."""
    if missing_methods(points):
        return None
    shared = levels_all_reach(
        [method_points(points, m)[:2] for m in SOURCES], levels, above=pi0_floor(points)
    )
    if not shared:
        return None
    states_gap, labels_gap, readings = {}, {}, {}
    for with_pi0 in (True, False):
        anchor = pi0_anchor(points) if with_pi0 else None
        states_gap[with_pi0] = _gap(points, STATES_GAP, shared, bootstrap, anchor)
        labels_gap[with_pi0] = _gap(points, LABELS_GAP, shared, bootstrap, anchor)
        readings[with_pi0] = classify(states_gap[with_pi0], labels_gap[with_pi0])
    return MechanismReading(shared, states_gap, labels_gap, readings)


def _coverage_lines(reading: MechanismReading) -> list[str]:
    """Where some resamples of runs have a frontier that stops short of a level, say how many remain: the
    gap is undefined there, so the interval is over the resamples in which every frontier reaches it (a
    run that never beats pi0 makes it an interval conditional on the other runs, which can understate the
    spread between runs)."""
    gaps = [*reading.states_gap.values(), *reading.labels_gap.values()]
    counts = [min(g.intervals[j].n_valid for g in gaps) for j in range(len(reading.levels))]
    n_boot = gaps[0].intervals[0].n_boot
    if all(c == n_boot for c in counts):
        return []
    cells = ", ".join(f"{lv:.0%}: {c} of {n_boot}" for lv, c in zip(reading.levels, counts, strict=True))
    return [
        "Resamples of runs in which every frontier reaches the level (the rest have no gap there, so each "
        f"interval is over these only and can understate the spread between runs): {cells}."
    ]


def _points(value: float) -> str:
    return f"{value * 100:+.0f}" if math.isfinite(value) else "n/a"


def _gap_cells(gap: MatchedGap) -> list[str]:
    return [
        f"{_points(g)} [{_points(ci.low)}, {_points(ci.high)}]"
        if ci.n_valid
        else f"{_points(g)} (no interval)"
        for g, ci in zip(gap.gap, gap.intervals, strict=True)
    ]


def forward_kl_lines(points: Points) -> list[str]:
    """Forward KL of each method's checkpoints that beat pi0 on the new task: mean, with its SE clustered
    by run (checkpoints of one run are not independent)."""
    floor = pi0_floor(points)
    lines = [
        "Forward KL(pi0‖pi) on new-task states of the checkpoints that beat pi0 on the new task "
        "(mean ± SE clustered by run):",
        "",
    ]
    for method, (states, labels) in SOURCES.items():
        pts = [
            p
            for p in points
            if p["method"] == method and p["new_task_success"] > floor and np.isfinite(p["forward_kl"])
        ]
        if not pts:
            lines.append(f"- {method} ({states}, {labels}): no checkpoint beat pi0")
            continue
        kl = clustered_mean([p["forward_kl"] for p in pts], [p["run"] for p in pts])
        se = f" ± {kl.se:.2f}" if math.isfinite(kl.se) else " (1 run: no SE)"
        lines.append(
            f"- {method} ({states}, {labels}): {kl.mean:.2f}{se} nats over {kl.n} checkpoints "
            f"from {kl.n_clusters} runs"
        )
    return lines


def _arm(point: dict[str, Any], several_rates: set[str]) -> str:
    """A checkpoint's arm: its method, with its learning rate where the method ran at several."""
    method = str(point["method"])
    return f"{method} lr {point['lr']}" if method in several_rates else method


def _mean_range(values: list[float], fmt: str) -> str:
    """'mean (lowest to highest)' of the finite values, each formatted with ``fmt``; the mean alone where
    the range prints as one value."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    mean, low, high = (format(v, fmt) for v in (float(np.mean(finite)), min(finite), max(finite)))
    return mean if low == high else f"{mean} ({low} to {high})"


def checkpoint_lines(points: Points) -> list[str]:
    """Where each of the three arms went, step by step: new-task and prior-skill success and forward KL,
    mean over runs with their range. Descriptive, outside the rule: it shows what happened when the rule
    cannot be read (an arm that never rises above pi0 on the new task shares no matched level)."""
    rates: dict[str, set[Any]] = {}
    for p in points:
        rates.setdefault(str(p["method"]), set()).add(p.get("lr"))
    several = {m for m, lrs in rates.items() if len(lrs) > 1}
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for p in points:
        if p["method"] in SOURCES and p.get("step") is not None:
            cells.setdefault((_arm(p, several), int(p["step"])), []).append(p)
    order = {m: i for i, m in enumerate(SOURCES)}

    def rank(key: tuple[str, int]) -> tuple[int, float, int]:
        first = cells[key][0]  # one arm: one method and learning rate
        return order[first["method"]], float(first.get("lr") or 0.0), key[1]

    keys = sorted(cells, key=rank)
    lines = [
        "Each arm checkpoint by checkpoint (mean over runs, the runs' range in brackets; descriptive, "
        "outside the rule):",
        "",
        "| arm | step | runs | new-task success | prior-skill success | forward KL (nats) |",
        "|---|---|---|---|---|---|",
    ]
    base = pi0_anchor(points)
    if base is not None:
        lines.append(f"| pi0 | 0 | - | {base[0]:.0%} | {base[1]:.0%} | 0 |")
    for arm, step in keys:
        pts = cells[(arm, step)]
        lines.append(
            f"| {arm} | {step} | {len(pts)} | "
            + " | ".join(
                _mean_range([float(p[key]) for p in pts], fmt)
                for key, fmt in (("new_task_success", ".0%"), ("prior_success", ".0%"), ("forward_kl", ".2f"))
            )
            + " |"
        )
    return lines


def mechanism_lines(
    points: Points, levels: Sequence[float], *, bootstrap: Bootstrap = DEFAULT_BOOTSTRAP
) -> list[str]:
    """The report section's body; empty when the study has no DAgger runs (study 1)."""
    if not any(p["method"] == "dagger" for p in points):
        return []
    intro = [
        "BC, DAgger and RFT share the BC loss and differ in where states and labels come from: "
        + "; ".join(f"{m}: {s}, {lab}" for m, (s, lab) in SOURCES.items())
        + ". Gaps in prior-skill success at matched new-task success (points, 95% intervals resampling "
        "each method's runs): DAgger minus BC is what on-policy states add with expert labels, RFT minus "
        "DAgger what the policy's own labels add on on-policy states. Rule, fixed before DAgger's runs: "
        "see `vla_razor/evaluation/mechanism.py`.",
        "",
    ]
    missing = missing_methods(points)
    if missing:
        return [
            *intro,
            f"Not yet readable: fewer than 2 runs of {', '.join(missing)}.",
            "",
            *forward_kl_lines(points),
            "",
            *checkpoint_lines(points),
        ]
    reading = mechanism_reading(points, levels, bootstrap=bootstrap)
    if reading is None:
        return [
            *intro,
            "Not readable: no matched level above pi0's new-task success that all three frontiers reach.",
            "",
            *forward_kl_lines(points),
            "",
            *checkpoint_lines(points),
        ]
    header = "| gap | frontiers | " + " | ".join(f"new-task {lv:.0%}" for lv in reading.levels) + " |"
    table = [header, "|---|---|" + "---|" * len(reading.levels)]
    for with_pi0 in (True, False):
        anchor = "with pi0" if with_pi0 else "without pi0"
        for name, gaps in (("DAgger − BC", reading.states_gap), ("RFT − DAgger", reading.labels_gap)):
            table.append(f"| {name} | {anchor} | " + " | ".join(_gap_cells(gaps[with_pi0])) + " |")
    agree = reading.readings[True] == reading.readings[False]
    coverage = _coverage_lines(reading)
    table += ["", *coverage] if coverage else []
    verdict = [
        f"Reading with pi0 as anchor: **{reading.readings[True]}**; without: **{reading.readings[False]}**.",
        "",
        f"**{reading.reading}**: "
        + (READING_TEXT[reading.reading] if agree else "the anchored and unanchored frontiers disagree")
        + ".",
    ]
    return [*intro, *table, "", *verdict, "", *forward_kl_lines(points), "", *checkpoint_lines(points)]
