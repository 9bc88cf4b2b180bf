"""Figures of the study (matplotlib, Agg backend, PNG): the success Pareto front and forgetting vs metric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vla_razor.evaluation.fit import PolyFit  # noqa: E402
from vla_razor.evaluation.frontier import near_frontier, pareto_frontier  # noqa: E402
from vla_razor.io_utils import atomic_path  # noqa: E402

METHOD_COLORS = {
    "pi0": "black",
    "ppo": "tab:blue",
    "rft": "tab:green",
    "bc": "tab:red",
    "bc_kl": "tab:orange",
}


def _color(method: str) -> str:
    return METHOD_COLORS.get(method, "tab:gray")


def pareto_plot(points: list[dict[str, Any]], path: Path, new_task: str) -> Path:
    """New-task success (x) vs mean prior-skill success (y), one point per checkpoint, by method, with each
    method's Pareto frontier drawn through its undominated checkpoints and, ringed, the checkpoints within
    2 points of it (the set RL's Razor keeps for its frontier analysis)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    base = [p for p in points if p["method"] == "pi0"]
    # One neutral legend entry for the rings of every method.
    ax.scatter([], [], s=110, facecolors="none", edgecolors="grey", label="within 2 points of its frontier")
    for method in sorted({p["method"] for p in points}):
        sel = [p for p in points if p["method"] == method]
        ax.errorbar(
            [p["new_task_success"] for p in sel],
            [p["prior_success"] for p in sel],
            xerr=[p["new_task_success_sem"] for p in sel],
            yerr=[p["prior_success_sem"] for p in sel],
            fmt="*" if method == "pi0" else "o",
            ms=12 if method == "pi0" else 6,
            color=_color(method),
            label=method,
            capsize=2,
            alpha=0.9,
        )
        if method != "pi0":  # the method's Pareto frontier with pi0 (what the matched table reads)
            front = sel + base
            new, prior = [p["new_task_success"] for p in front], [p["prior_success"] for p in front]
            idx = pareto_frontier(new, prior)
            near = near_frontier(new, prior)[: len(sel)]  # front lists sel first, then pi0
            kept = [p for p, is_near in zip(sel, near, strict=True) if is_near]
            ax.scatter(
                [p["new_task_success"] for p in kept],
                [p["prior_success"] for p in kept],
                s=110,
                facecolors="none",
                edgecolors=_color(method),
                linewidths=1.0,
            )
            ax.plot(
                [front[i]["new_task_success"] for i in idx],
                [front[i]["prior_success"] for i in idx],
                "-",
                color=_color(method),
                lw=1.2,
                alpha=0.7,
            )
    ax.set_xlabel(f"new-task success ({new_task})")
    ax.set_ylabel("prior-skill success (mean)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("Pareto: learning the new task vs keeping old skills")
    return _save(fig, path)


def forgetting_plot(points: list[dict[str, Any]], metric: str, fit: PolyFit, path: Path, label: str) -> Path:
    """Forgetting vs one divergence metric, all methods on one plot, with the quadratic fit and R^2."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for method in sorted({p["method"] for p in points}):
        sel = [p for p in points if p["method"] == method]
        ax.errorbar(
            [p[metric] for p in sel],
            [p["forgetting"] for p in sel],
            xerr=[p.get(f"{metric}_sem", 0.0) or 0.0 for p in sel],
            yerr=[p["forgetting_sem"] for p in sel],
            fmt="o",
            color=_color(method),
            label=method,
            capsize=2,
            alpha=0.9,
        )
    xs = np.array([p[metric] for p in points], dtype=float)
    if np.isfinite(fit.r2) and xs.size:
        grid = np.linspace(0.0, float(xs.max()) * 1.05 + 1e-12, 100)
        ax.plot(grid, fit(grid), "--", color="gray", label=f"quadratic fit, R² = {fit.r2:.2f}")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xlabel(label)
    ax.set_ylabel("forgetting (pi0 prior success − checkpoint's)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path
