"""Training throughput on the tiny default (CPU): BC samples/s, PPO env-steps/s and where PPO's time goes.

    python benchmarks/train_throughput.py [--task grasp_lift_can] [--num-envs 4] [--updates 3] [--num-steps 32]

Everything runs in one process, side by side, under the same render settings (the policy's two 64x64
cameras, fast render) and the same number of envs: raw stepping with random actions of the vectorised
env (gymnasium's AsyncVectorEnv, ``envs.make_vector_env``) and of the rollout engine's pool
(``PoolVectorEnv``), then PPO updates with the tiny-default architecture (configs/policy/tiny_scratch.yaml)
through the engine (double-buffered when there are at least two envs per worker) and, for reference,
through the previous setup (AsyncVectorEnv, decode then step). It prints PPO env-steps/s relative to each
raw env and the share of PPO wall time spent in the simulator vs the policy vs the learner.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from vla_razor import envs
from vla_razor.data.normalization import ActionNormStats
from vla_razor.policies import build_policy
from vla_razor.rollouts import EnvPool, PoolVectorEnv, available_cores
from vla_razor.trainers.bc import bc_batch_loss
from vla_razor.trainers.ppo import PPOSettings, train_ppo


def tiny_default_policy(words: list[str]) -> object:
    # TinyPolicyConfig's defaults are pi0's architecture (what configs/policy/tiny_scratch.yaml builds).
    return build_policy({"family": "tiny", "extra_words": words})


def env_kwargs(policy: object) -> dict:
    keys = [k for k in policy.settings.image_keys if k.endswith("_image")]  # type: ignore[attr-defined]
    return {"cameras": tuple(k[:-6] for k in keys), "image_size": policy.settings.image_size}  # type: ignore[attr-defined]


def bench_bc(policy: object, batch: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    size = policy.settings.image_size  # type: ignore[attr-defined]
    obs = {
        k: rng.integers(0, 255, (batch, size, size, 3), dtype=np.uint8) for k in policy.settings.image_keys
    }  # type: ignore[attr-defined]
    obs["proprio"] = rng.normal(size=(batch, 9)).astype(np.float32)
    actions = rng.uniform(-1, 1, (batch, 7)).astype(np.float32)
    params = [p for p in policy.parameters() if p.requires_grad]  # type: ignore[attr-defined]
    opt = torch.optim.AdamW(params, lr=1e-4)
    instr = ["grasp and lift the can"] * batch
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        loss, _ = bc_batch_loss(policy, obs, instr, actions, shift_pad=4, rng=rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - start)


def bench_raw_env(venv: object, num_envs: int, steps: int) -> float:
    venv.reset(seed=list(range(num_envs)))  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(steps):
        venv.step(rng.uniform(-1, 1, (num_envs, 7)).astype(np.float32))  # type: ignore[attr-defined]
    return num_envs * steps / (time.perf_counter() - start)


def bench_ppo(policy: object, venv: object, args: argparse.Namespace) -> tuple[float, dict]:
    settings = PPOSettings(
        num_iterations=args.updates, num_steps=args.num_steps, minibatch_size=32, save_every=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = train_ppo(copy.deepcopy(policy), venv, settings, Path(tmp), {}, progress=False)
        wall = time.perf_counter() - start
    return args.updates * args.num_steps * args.num_envs / wall, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="grasp_lift_can")
    parser.add_argument("--num-envs", type=int, default=2 * available_cores())
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--num-steps", type=int, default=32)
    parser.add_argument("--bc-batch", type=int, default=64)
    parser.add_argument("--bc-steps", type=int, default=10)
    parser.add_argument("--skip-previous", action="store_true", help="skip PPO on the previous setup")
    args = parser.parse_args()

    words = sorted({w for spec in envs.TASKS.values() for w in spec.instruction.split()})
    policy = tiny_default_policy(words)
    print(f"tiny default: {policy.num_parameters():,} parameters, torch threads {torch.get_num_threads()}")
    bc_rate = bench_bc(policy, args.bc_batch, args.bc_steps)
    print(f"BC: {bc_rate:.0f} samples/s (batch {args.bc_batch}, random-shift augmentation)")
    policy.norm_stats = ActionNormStats.identity()

    kwargs = env_kwargs(policy)
    steps = args.num_steps * args.updates
    gym_venv = envs.make_vector_env(
        args.task, args.num_envs, vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}, **kwargs
    )
    raw = bench_raw_env(gym_venv, args.num_envs, steps)
    previous = None if args.skip_previous else bench_ppo(policy, gym_venv, args)
    gym_venv.close()
    with EnvPool() as pool:
        pool_venv = PoolVectorEnv(pool, {"task": args.task, **kwargs}, args.num_envs)
        raw_pool = bench_raw_env(pool_venv, args.num_envs, steps)
        ppo_rate, result = bench_ppo(policy, pool_venv, args)
        settings = pool.settings
        piped = len(pool_venv.groups) > 1

    print(
        f"\n{args.task}, {args.num_envs} envs, cameras {kwargs['cameras']} {kwargs['image_size']}px, fast render; "
        f"{available_cores()} CPUs; engine: {settings.workers} workers, policy threads {settings.threads} "
        f"during rollouts, double buffering {'on' if piped else 'off'}"
    )
    print("| measure | value |\n|---|---|")
    print(f"| raw vectorised env steps/s (AsyncVectorEnv, random actions) | {raw:.1f} |")
    print(f"| raw engine env steps/s (PoolVectorEnv, random actions) | {raw_pool:.1f} |")
    if previous is not None:
        print(f"| PPO env-steps/s, previous setup (AsyncVectorEnv, decode then step) | {previous[0]:.1f} |")
        print(f"| previous PPO / raw vectorised env | {previous[0] / raw:.2f} |")
    print(f"| PPO env-steps/s through the engine (rollout + update) | {ppo_rate:.1f} |")
    print(f"| PPO / raw engine env | {ppo_rate / raw_pool:.2f} |")
    for key in ("env", "policy", "update"):
        print(f"| PPO time share: {key} | {result[f'total_time_share_{key}']:.0%} |")
    print(f"PPO / raw vectorised env: {ppo_rate / raw:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
