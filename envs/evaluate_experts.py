"""Measure every scripted expert: success rate and mean episode length over seeded episodes.

    python -m vla_razor.envs.evaluate_experts --episodes 100 --out results/experts.json

Runs without cameras (physics only) across worker processes; episode i uses seed i, so runs are
reproducible. Writes JSON (or markdown if --out ends in .md) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

from vla_razor.envs.tasks import TASKS, get_task


def _run_chunk(args: tuple[str, list[int]]) -> list[tuple[bool, int]]:
    from vla_razor.envs import make_env, make_expert

    task, seeds = args
    env = make_env(task, use_camera=False)
    expert = make_expert(task)
    results = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset()
        steps, success = 0, False
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            steps += 1
            if terminated or truncated:
                success = bool(info["is_success"])
                break
        results.append((success, steps))
    env.close()
    return results


def evaluate(tasks: list[str], episodes: int, processes: int) -> dict[str, dict[str, Any]]:
    jobs = []
    for task in tasks:
        seeds = list(range(episodes))
        chunk = math.ceil(episodes / processes)
        jobs += [(task, seeds[i : i + chunk]) for i in range(0, episodes, chunk)]
    ctx = mp.get_context("forkserver")
    with ctx.Pool(processes) as pool:
        outputs = pool.map(_run_chunk, jobs, chunksize=1)
    table: dict[str, dict[str, Any]] = {}
    for (task, _), out in zip(jobs, outputs, strict=True):
        row = table.setdefault(task, {"successes": 0, "episodes": 0, "steps": 0, "success_steps": 0})
        for success, steps in out:
            row["episodes"] += 1
            row["successes"] += int(success)
            row["steps"] += steps
            row["success_steps"] += steps if success else 0
    for task, row in table.items():
        n, k = row["episodes"], row["successes"]
        p = k / n
        row.update(
            success_rate=p,
            stderr=math.sqrt(p * (1 - p) / n),
            mean_length=row["steps"] / n,
            mean_success_length=(row["success_steps"] / k) if k else None,
            horizon=get_task(task).horizon,
        )
    return table


def to_markdown(table: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| task | success | episodes | mean length | mean length (successes) | horizon |",
        "|---|---|---|---|---|---|",
    ]
    for task, row in table.items():
        succ_len = f"{row['mean_success_length']:.1f}" if row["mean_success_length"] is not None else "-"
        lines.append(
            f"| {task} | {100 * row['success_rate']:.0f}% ± {100 * row['stderr']:.0f} | {row['episodes']} "
            f"| {row['mean_length']:.1f} | {succ_len} | {row['horizon']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="subset of task names")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write results to this .json or .md file")
    args = parser.parse_args(argv)
    for task in args.tasks:
        get_task(task)
    if args.episodes < 1:
        parser.error(f"--episodes={args.episodes} must be >= 1")
    start = time.perf_counter()
    table = evaluate(args.tasks, args.episodes, args.processes)
    markdown = to_markdown(table)
    print(markdown)
    print(
        f"\n({args.episodes} seeded episodes per task, seeds 0..{args.episodes - 1}, "
        f"{time.perf_counter() - start:.0f} s)"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if args.out.suffix == ".md":
            args.out.write_text(markdown + "\n")
        else:
            args.out.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
