"""Where the rollout engine's CPU goes: simulator workers vs the policy, per env step, by slots per worker.

    python benchmarks/engine_cpu.py [--task lift] [--episodes 24] [--slots 1 2 4] [--render-profiles full fast]

On a CPU-bound machine throughput is (cores) / (CPU per env step), so this is the figure to cut. For each
``engine.slots_per_worker`` value it plays the same greedy pi0 episodes (same seeds, so the same steps)
through the engine and reports the CPU its env workers and its own process (the policy, batching,
bookkeeping) spent per env step, beside a plain loop of one env in this process (random actions: the
simulator alone, nothing else). Envs are built and warmed before timing. With ``--render-profiles`` the
same is measured under each render profile (pi0 plays under a profile it was not trained on where asked):
the env workers' share is what a cheaper render can cut, the policy's share is what it cannot.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import psutil

from vla_razor import envs
from vla_razor.envs.render_profiles import RENDER_PROFILES
from vla_razor.policies import load_policy
from vla_razor.rollouts import EngineSettings, policy_env_kwargs
from vla_razor.rollouts.engine import EpisodeJob, play_episodes
from vla_razor.rollouts.pool import EnvPool

PI0 = "vla_razor/assets/pi0_tiny"
SEEDS = 100000
WARM_SEEDS = 900000


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def engine_cpu(policy, env_kwargs: dict, episodes: int, slots: int) -> dict[str, float]:
    me = psutil.Process()
    with EnvPool(EngineSettings(slots_per_worker=slots)) as pool:
        warm = [EpisodeJob(env_kwargs, WARM_SEEDS + i) for i in range(pool.settings.workers * slots)]
        play_episodes(policy, pool, warm)
        workers = me.children(recursive=True)
        before = {p.pid: cpu_seconds(p) for p in workers}
        own, start = cpu_seconds(me), time.perf_counter()
        played = play_episodes(policy, pool, [EpisodeJob(env_kwargs, SEEDS + i) for i in range(episodes)])
        wall = time.perf_counter() - start
        own = cpu_seconds(me) - own
        worker_cpu = sum(
            cpu_seconds(p) - before[p.pid] for p in workers if p.pid in before and p.is_running()
        )
        workers_n = pool.settings.workers
    steps = sum(e.episode.length for e in played)
    return {
        "workers": workers_n,
        "steps": steps,
        "steps_per_s": steps / wall,
        "worker_ms": 1000 * worker_cpu / steps,
        "policy_ms": 1000 * own / steps,
    }


def plain_loop_ms(env_kwargs: dict, steps: int) -> float:
    env = envs.make_env(**env_kwargs)
    env.reset(seed=SEEDS)
    rng = np.random.default_rng(0)
    start = time.process_time()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=7))
        if terminated or truncated:
            env.reset()
    ms = 1000 * (time.process_time() - start) / steps
    env.close()
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="lift")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--slots", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--policy", default=PI0)
    parser.add_argument(
        "--render-profiles",
        nargs="*",
        default=None,
        choices=list(RENDER_PROFILES),
        help="default: the policy's own",
    )
    args = parser.parse_args()
    envs.get_task(args.task)
    policy = load_policy(args.policy)
    profiles = args.render_profiles or [policy.settings.render_profile]
    print(
        f"{args.task}, {args.policy} greedy, {args.episodes} episodes, {psutil.cpu_count()} CPUs; "
        "CPU ms per env step"
    )
    print(
        "| render profile | slots per worker | env steps | steps/s | env workers | this process (policy) | total |"
    )
    print("|---|---|---|---|---|---|---|")
    for profile in profiles:
        env_kwargs = {"task": args.task, **policy_env_kwargs(policy), "render_profile": profile}
        for slots in args.slots:
            r = engine_cpu(policy, env_kwargs, args.episodes, slots)
            print(
                f"| {profile} | {slots} | {r['steps']} | {r['steps_per_s']:.1f} | {r['worker_ms']:.1f} "
                f"({r['workers']} workers) | {r['policy_ms']:.1f} | {r['worker_ms'] + r['policy_ms']:.1f} |"
            )
        loop = plain_loop_ms(env_kwargs, 150)
        print(f"plain loop under {profile}, one env in this process, random actions: {loop:.1f} ms")


if __name__ == "__main__":
    main()
