"""Greedy or sampled: does a policy's task success depend on how its action tokens are decoded?

    python benchmarks/sampled_success.py                       # pi0 v2 on its suite + pick_place_bread
    python benchmarks/sampled_success.py --policy DIR --tasks pick_place_milk lift --episodes 52

The held-out suite measures success with greedy actions (each of the 7 tokens its argmax); PPO, RFT and
DAgger collect their rollouts by sampling at temperature 1. Where the two differ a lot, a fine-tune can
look stuck under one and solved under the other: per-token argmax of a broad or two-peaked distribution
over 256 bins can pick an action the sampled policy rarely plays. Same seeds (the held-out ones, 100000
on) under both; sampled episodes draw from one generator per pass (``--sample-seed``). Prints one row per
task, greedy and sampled success with 95% Wilson intervals, and the McNemar exact p on the paired seeds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from scipy.stats import binomtest

from vla_razor.config import asset_path, config_dir
from vla_razor.evaluation.stats import wilson_interval
from vla_razor.evaluation.success import evaluate_success, heldout_seeds
from vla_razor.io_utils import write_json_atomic
from vla_razor.machine import describe_machine
from vla_razor.policies import load_policy
from vla_razor.rollouts import EngineSettings, EnvPool, policy_env_kwargs
from vla_razor.sampling import GREEDY, Sampling, seeded_generator


def suite_tasks(name: str) -> list[str]:
    cfg = OmegaConf.load(config_dir() / "suite" / f"{name}.yaml")
    return [str(cfg.new_task), *map(str, cfg.prior_tasks)]


def rate(k: int, n: int) -> str:
    ci = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.0%} [{ci.low:.0%}, {ci.high:.0%}]"


def mcnemar_p(greedy: list[bool], sampled: list[bool]) -> float:
    """Exact McNemar test on paired seeds: of the seeds where the two disagree, is either side favoured?"""
    only_sampled = sum(s and not g for g, s in zip(greedy, sampled, strict=True))
    only_greedy = sum(g and not s for g, s in zip(greedy, sampled, strict=True))
    if only_sampled + only_greedy == 0:
        return 1.0
    return float(binomtest(only_sampled, only_sampled + only_greedy).pvalue)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default=None, help="policy or checkpoint dir (default: pi0 v2)")
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the pick_place suite + bread")
    parser.add_argument("--episodes", type=int, default=20, help="held-out seeds per task")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="env workers (default: one per CPU)")
    parser.add_argument("--out", default=None, help="write per-episode outcomes and the summary as JSON")
    args = parser.parse_args()

    policy = load_policy(args.policy or asset_path("pi0_tiny_v2"))
    tasks = args.tasks or [*suite_tasks("pick_place"), "pick_place_bread"]
    seeds = heldout_seeds(args.episodes)
    env_kwargs = policy_env_kwargs(policy)
    sampled = Sampling(
        greedy=False,
        temperature=args.temperature,
        generator=seeded_generator(args.sample_seed, policy.device),
    )
    started = time.perf_counter()
    with torch.no_grad(), EnvPool(EngineSettings(num_workers=args.workers)) as pool:
        results = {
            mode: evaluate_success(policy, pool, tasks, env_kwargs, seeds, sampling=how, progress=mode)
            for mode, how in (("greedy", GREEDY), ("sampled", sampled))
        }
    wall = time.perf_counter() - started

    name = Path(args.policy).name if args.policy else "pi0_tiny_v2"
    print(
        f"{name}: greedy vs sampled (temperature {args.temperature}) success, {args.episodes} held-out seeds"
    )
    print("| task | greedy (95% Wilson) | sampled (95% Wilson) | McNemar p |")
    print("|---|---|---|---|")
    summary = []
    for task in tasks:
        g = [e.success for e in results["greedy"][task].episodes]
        s = [e.success for e in results["sampled"][task].episodes]
        p = mcnemar_p(g, s)
        print(f"| {task} | {rate(sum(g), len(g))} | {rate(sum(s), len(s))} | {p:.3g} |")
        summary.append({"task": task, "greedy": g, "sampled": s, "mcnemar_p": p})
    print(f"wall time {wall:.0f} s on {describe_machine()}")
    if args.out:
        write_json_atomic(args.out, {"args": vars(args), "machine": describe_machine(), "tasks": summary})


if __name__ == "__main__":
    main()
