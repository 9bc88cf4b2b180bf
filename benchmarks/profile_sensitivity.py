"""Does a 64x64 policy notice the render profile? One policy, the same held-out seeds, both profiles.

    python benchmarks/profile_sensitivity.py [--policy vla_razor/assets/pi0_tiny] [--suite default] [--episodes 52]

Plays the suite's tasks (prior skills and new task) with greedy actions under the policy's own render
profile and under the other one, on the same seeds, and prints per task the two success rates, the
paired difference (other - own) with a 95% interval (normal approximation on the per-seed differences),
the discordant seeds (succeeded under one profile only) and McNemar's exact p-value (scipy's binomial
test on the discordant pairs). ``--out FILE`` also writes the table as JSON.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy.stats import binomtest

from vla_razor.config import config_dir
from vla_razor.evaluation.success import evaluate_success, heldout_seeds
from vla_razor.io_utils import write_json_atomic
from vla_razor.machine import describe_machine
from vla_razor.policies import load_policy
from vla_razor.rollouts import EngineSettings, EnvPool, policy_env_kwargs

PROFILES = ("full", "fast")


def paired_difference(own: list[bool], other: list[bool]) -> dict[str, float]:
    """Mean of other - own over seeds, its 95% interval, discordant counts and McNemar's exact p."""
    d = np.asarray(other, dtype=float) - np.asarray(own, dtype=float)
    n = len(d)
    mean = float(d.mean())
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else float("nan")
    gained, lost = int((d > 0).sum()), int((d < 0).sum())
    p = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return {"diff": mean, "low": mean - half, "high": mean + half, "gained": gained, "lost": lost, "p": p}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="vla_razor/assets/pi0_tiny")
    parser.add_argument("--suite", default="default")
    parser.add_argument("--episodes", type=int, default=52)
    parser.add_argument("--tasks", nargs="*", default=None, help="a subset of the suite's tasks")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    suite = OmegaConf.load(Path(config_dir()) / "suite" / f"{args.suite}.yaml")
    tasks = args.tasks or [*suite.prior_tasks, suite.new_task]
    policy = load_policy(args.policy)
    own = policy.settings.render_profile
    other = next(p for p in PROFILES if p != own)
    seeds = heldout_seeds(args.episodes, int(suite.seed))
    outcomes: dict[str, dict[str, list[bool]]] = {}
    with EnvPool(EngineSettings()) as pool:
        for profile in (own, other):
            env_kwargs = {**policy_env_kwargs(policy), "render_profile": profile}
            results = evaluate_success(policy, pool, tasks, env_kwargs, seeds, progress=f"eval {profile}")
            for task, result in results.items():
                outcomes.setdefault(task, {})[profile] = [bool(e.success) for e in result.episodes]
    print(f"machine: {describe_machine()}")
    print(f"policy {args.policy} (trained on render_profile={own!r}), suite {args.suite}, N = {len(seeds)}")
    print(
        f"| task | success, {own} | success, {other} | {other} - {own} [95% CI] | seeds gained / lost | McNemar p |"
    )
    print("|---|---|---|---|---|---|")
    table = {}
    for task in tasks:
        a, b = outcomes[task][own], outcomes[task][other]
        pair = paired_difference(a, b)
        table[task] = {own: float(np.mean(a)), other: float(np.mean(b)), **pair}
        print(
            f"| {task} | {np.mean(a):.1%} | {np.mean(b):.1%} | {pair['diff']:+.1%} "
            f"[{pair['low']:+.1%}, {pair['high']:+.1%}] | {pair['gained']} / {pair['lost']} | {pair['p']:.2f} |"
        )
    if args.out:
        write_json_atomic(
            args.out,
            {
                "policy": args.policy,
                "own_profile": own,
                "suite": args.suite,
                "episodes": len(seeds),
                "tasks": table,
            },
        )


if __name__ == "__main__":
    main()
