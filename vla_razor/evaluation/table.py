"""The results document as a markdown table: one row per policy, success with its interval, forgetting,
the divergences from pi0 and the weight distance."""

from __future__ import annotations

from typing import Any


def results_table(document: dict[str, Any]) -> str:
    suite = document["suite"]
    tasks = [*suite["prior_tasks"], suite["new_task"]]
    head = [
        "policy",
        *[f"{t}{' (new)' if t == suite['new_task'] else ''}" for t in tasks],
        "forgetting",
        "fwd KL(pi0‖pi)",
        "rev KL",
        "TV",
        "prior-state KL",
        "drift (1-CKA)",
        "weight L2",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for pid, rec in document["policies"].items():
        cells = [pid]
        for t in tasks:
            r = rec["tasks"][t]
            if "wilson_low" in r:
                cells.append(f"{r['success_rate']:.0%} [{r['wilson_low']:.0%}, {r['wilson_high']:.0%}]")
            else:  # results written before intervals were recorded
                cells.append(f"{r['success_rate']:.0%} ± {r['sem']:.0%}")
        f = rec["forgetting"]
        cells.append(f"{f['mean']:+.0%} ± {f['mean_sem']:.0%}")
        d = rec.get("divergence") or {}
        cells += [
            _num(d.get("forward_kl"), d.get("forward_kl_sem")),
            _num(d.get("reverse_kl")),
            _num(d.get("tv")),
            _num(d.get("prior_forward_kl"), d.get("prior_forward_kl_sem")),
            _num(d.get("representation_drift")),
            f"{rec.get('weight_l2_from_pi0', 0.0):.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    n = document["n_per_task"]
    states = next((r.get("divergence", {}).get("kl_states") for r in document["policies"].values()), None)
    lines.append(
        f"\nN = {n} held-out episodes per task and policy (seeds {document['seeds'][0]}..{document['seeds'][-1]}"
        f"{decode_note(document.get('suite', {}))}); "
        f"KL over {int(states or 0)} cached new-task states from pi0's rollouts (SE clustered by episode); "
        "success with its 95% Wilson interval; forgetting ± its SE paired over seeds; "
        "prior-state KL = forward KL on each prior task's states from pi0's rollouts, averaged."
    )
    return "\n".join(lines) + "\n"


def _num(value: float | None, sem: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g} ± {sem:.2g}" if sem is not None else f"{value:.3g}"


def decode_note(suite: dict) -> str:
    """How the suite's episodes picked actions, where it is not greedy (greedy suites, study 1's among
    them, record no decode entry, and their reports keep their words)."""
    if suite.get("decode", "greedy") == "greedy":
        return ""
    return f", actions sampled at temperature {suite.get('temperature', 1.0):g}, one stream per episode"
