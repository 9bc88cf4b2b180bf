"""Can DAgger's relabelling expert finish from the states a learner visits? A policy (pi0 v2 by default)
acts for the first ``t`` steps of an episode, sampling as in a DAgger or PPO rollout, then the relabelling
expert (envs/relabel.py) takes over and acts alone.

    python benchmarks/relabel_takeover.py                                   # pi0 v2, pick_place_bread
    python benchmarks/relabel_takeover.py --policy DIR --task grasp_lift_can --takeover 0 20 40

The episode's horizon is the task's plus ``t``, so a late takeover measures the expert, not the clock.
Each takeover state is classified first: the object is *graspable* if it rests upright (tilted under 45
degrees) inside the bins' area; the target (>= 90% success there) is stated over graspable states, and
the rest are reported on their own. Seeds are the held-out ones (100000 on), paired across takeover steps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vla_razor.config import asset_path  # noqa: E402
from vla_razor.envs import make_env  # noqa: E402
from vla_razor.envs.experts import quat_xyzw_to_mat  # noqa: E402
from vla_razor.evaluation.stats import wilson_interval  # noqa: E402
from vla_razor.policies import load_policy  # noqa: E402
from vla_razor.rollouts import policy_env_kwargs  # noqa: E402
from vla_razor.rollouts.observations import policy_batch, stack_obs  # noqa: E402
from vla_razor.sampling import seeded_generator  # noqa: E402
from vla_razor.seeds import HELDOUT_SEED_START  # noqa: E402

MAX_TILT_RAD = math.pi / 4
BIN_MARGIN_M = 0.02


def graspable(env, object_state: np.ndarray) -> bool:
    """Upright and inside the two bins' area (pick-and-place scenes) or on the table (lift)."""
    rs = env.unwrapped._rs
    up = quat_xyzw_to_mat(object_state[3:7])[:, 2]
    if math.acos(float(np.clip(up[2], -1.0, 1.0))) > MAX_TILT_RAD:
        return False
    if not hasattr(rs, "bin1_pos"):
        return True
    pos = object_state[:3]
    half = np.asarray(rs.bin_size[:2]) / 2 + BIN_MARGIN_M
    return any(bool(np.all(np.abs(pos[:2] - np.asarray(b[:2])) <= half)) for b in (rs.bin1_pos, rs.bin2_pos))


def run_episode(env, policy, seed: int, takeover: int, generator: torch.Generator, greedy: bool) -> dict:
    obs, _ = env.reset(seed=seed)
    state_ok = True
    for t in range(env.horizon):
        if t == takeover:
            state_ok = graspable(env, obs["object_state"])
        if t < takeover:
            with torch.no_grad():
                out = policy.act(policy_batch(policy, stack_obs([obs])), greedy=greedy, generator=generator)
            action = out.actions[0]
        else:
            action = obs["expert_action"]
        obs, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        if terminated or truncated:
            # An episode the policy finished (or failed) before the takeover: no expert state to judge.
            return {"seed": seed, "takeover": takeover, "reached": t >= takeover, "graspable": state_ok,
                    "success": bool(info["is_success"]), "length": t + 1}  # fmt: skip
    raise AssertionError("the env truncates at its horizon")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default=None, help="policy or checkpoint dir (default: pi0 v2)")
    parser.add_argument("--task", default="pick_place_bread")
    parser.add_argument("--takeover", type=int, nargs="+", default=[10, 30, 50])
    parser.add_argument("--episodes", type=int, default=52, help="seeds per takeover step")
    parser.add_argument("--greedy", action="store_true", help="greedy policy actions (default: sampled)")
    parser.add_argument("--out", default=None, help="write the episodes and the summary here as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policy = load_policy(args.policy or asset_path("pi0_tiny_v2"))
    policy.eval()
    rows = []
    started = time.perf_counter()
    for takeover in args.takeover:
        base = make_env(args.task, **policy_env_kwargs(policy)).horizon
        env = make_env(args.task, expert_labels=True, horizon=base + takeover, **policy_env_kwargs(policy))
        generator = seeded_generator(takeover, "cpu")
        for i in range(args.episodes):
            rows.append(run_episode(env, policy, HELDOUT_SEED_START + i, takeover, generator, args.greedy))
        env.close()
    print(f"relabelling expert on {args.task}, taking over from {'greedy' if args.greedy else 'sampled'} "
          f"{Path(args.policy or 'pi0_tiny_v2').name} after t steps ({args.episodes} seeds each):")  # fmt: skip
    print(
        "| t | states reached | graspable | expert success on graspable (95% Wilson) | success, not graspable |"
    )
    print("|---|---|---|---|---|")
    summary = []
    for takeover in args.takeover:
        mine = [r for r in rows if r["takeover"] == takeover and r["reached"]]
        good = [r for r in mine if r["graspable"]]
        rest = [r for r in mine if not r["graspable"]]
        k = sum(r["success"] for r in good)
        ci = wilson_interval(k, len(good)) if good else None
        rate = f"{k}/{len(good)} = {k / len(good):.1%} [{ci.low:.1%}, {ci.high:.1%}]" if ci else "-"
        others = f"{sum(r['success'] for r in rest)}/{len(rest)}" if rest else "-"
        print(f"| {takeover} | {len(mine)} | {len(good)} | {rate} | {others} |")
        summary.append({"takeover": takeover, "reached": len(mine), "graspable": len(good), "success": k,
                        "not_graspable": len(rest), "success_not_graspable": sum(r["success"] for r in rest)})  # fmt: skip
    print(f"wall time {time.perf_counter() - started:.0f} s")
    if args.out:
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "summary": summary, "episodes": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
