"""How far from pi0 do the labels of BC, DAgger and RFT sit? pi0's action-token cross-entropy on each
arm's training data, before any training.

    python benchmarks/label_distance.py                         # pi0 v2 on pick_place_milk (study 2)
    python benchmarks/label_distance.py --episodes 8 --demo-steps 256 --out /tmp/ld.json

RL's Razor explains forgetting by how far a fine-tune moves from pi0, and on-policy RL's labels are pi0's
own samples, so it cannot move far. Study 2's three BC-loss arms differ only in their data
(``vla_razor/evaluation/mechanism.py``); this measures that data against pi0, in nats per action token:

- **BC**: demo states, expert labels (the study's SFT demos, an evenly spaced sample of their steps);
- **DAgger, first iteration**: pi0's own states (sampled rollouts, beta = 0, as the study's DAgger runs),
  labelled by the relabelling expert (``envs/relabel.py``) at every visited state;
- **RFT**: pi0's own states and its own sampled tokens, in the episodes that succeeded (what RFT trains
  on); and pi0's own tokens in every episode, whose expected cross-entropy is pi0's entropy: the floor.

Each figure is a mean over steps with its SE clustered by episode (steps of one episode are not
independent), split by action dimension, with the share of label tokens that are pi0's most likely one.
Rollout seeds start at ``--seed-start`` (0: training-side seeds, apart from the held-out 100000 on).
The rollouts run whole episodes, where DAgger's iterations take 100 steps per env: the same kind of
states, not the same sample. ``--dagger-runs`` scores the sample itself: the first-iteration states and
labels a DAgger run saved (``<run>/dagger/rank0_iter000001.npz``, pi0's own states), one row per run.

    python benchmarks/label_distance.py --dagger-runs runs/razor/study2/train/dagger_lr0.0001_seed*
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vla_razor.config import asset_path  # noqa: E402
from vla_razor.data.demos import ensure_demos  # noqa: E402
from vla_razor.data.steps import load_steps  # noqa: E402
from vla_razor.envs import make_env  # noqa: E402
from vla_razor.evaluation.stats import clustered_mean  # noqa: E402
from vla_razor.policies import load_policy  # noqa: E402
from vla_razor.rollouts import EnvPool, policy_env_kwargs  # noqa: E402
from vla_razor.rollouts.observations import policy_batch, stack_obs  # noqa: E402
from vla_razor.sampling import seeded_generator  # noqa: E402
from vla_razor.trainers.dagger import AGGREGATE_DIR, load_shard  # noqa: E402

DIMS = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
DEMO_SEED = 50_000  # the study's SFT demos (vla_razor/workflows/study.py)


def rollouts(policy: Any, task: str, seeds: list[int]) -> dict[str, Any]:
    """pi0's sampled episodes: at each step its inputs, its own tokens and the relabelling expert's action."""
    env = make_env(task, expert_labels=True, **policy_env_kwargs(policy))
    generator = seeded_generator(0, "cpu")
    steps: list[dict[str, Any]] = []
    own, expert, episode, success = [], [], [], []
    for e, seed in enumerate(seeds):
        obs, _ = env.reset(seed=seed)
        while True:
            steps.append(obs)
            with torch.no_grad():
                out = policy.act(policy_batch(policy, stack_obs([obs])), generator=generator)
            own.append(out.token_ids[0].cpu())
            expert.append(np.asarray(obs["expert_action"], dtype=np.float32))
            episode.append(e)
            obs, _, terminated, truncated, info = env.step(out.actions[0])
            if terminated or truncated:
                success.append(bool(info["is_success"]))
                break
    env.close()
    return {
        "obs": steps,
        "own_tokens": torch.stack(own),
        "expert_actions": np.stack(expert),
        "episode": np.asarray(episode),
        "success": success,
    }


@torch.no_grad()
def score_labels(
    policy: Any, obs: list[dict[str, Any]], tokens: torch.Tensor, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """pi0's cross-entropy on each label token, teacher-forced, and whether the token is pi0's most likely
    one given the label's earlier tokens: two [steps, 7] arrays."""
    nll, top = [], []
    for start in range(0, len(obs), batch_size):
        batch = policy_batch(policy, stack_obs(obs[start : start + batch_size]))
        chunk = tokens[start : start + batch_size]
        scored = policy.score(batch, chunk)
        slots = policy.action_tokenizer.ids_to_bin_slots(chunk.to(scored.logits.device))
        nll.append(-scored.token_log_probs.cpu().numpy())
        top.append((scored.logits.argmax(-1) == slots).cpu().numpy())
    return np.concatenate(nll), np.concatenate(top)


def summarise(name: str, nll: np.ndarray, top: np.ndarray, episode: np.ndarray) -> dict[str, Any]:
    """Mean cross-entropy per token (and per dimension) and argmax agreement, SEs clustered by episode."""
    per_step = nll.mean(axis=1)
    total = clustered_mean(per_step.tolist(), episode.tolist())
    dims = {d: clustered_mean(nll[:, i].tolist(), episode.tolist()) for i, d in enumerate(DIMS)}
    agree = clustered_mean(top.mean(axis=1).tolist(), episode.tolist())
    return {
        "arm": name,
        "steps": int(len(per_step)),
        "episodes": int(len(np.unique(episode))),
        "nats_per_token": total.mean,
        "nats_per_token_se": total.se,
        "per_dimension": {d: {"mean": v.mean, "se": v.se} for d, v in dims.items()},
        "argmax_agreement": agree.mean,
        "argmax_agreement_se": agree.se,
    }


def demo_sample(policy: Any, path: Path, n_steps: int) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """An evenly spaced sample of the demos' steps: (observations, expert actions, demo episode ids)."""
    keys = policy.settings.input_keys
    data = load_steps([path], keys, render_profile=policy.settings.render_profile)
    if data is None:
        raise SystemExit(f"error: demo file {str(path)!r} holds no demos")
    index = np.linspace(0, len(data) - 1, min(n_steps, len(data))).round().astype(int)
    obs = [
        {**{k: data.obs[k][i] for k in keys}, "instruction": data.instructions[int(data.instruction_ids[i])]}
        for i in index
    ]
    return obs, data.actions[index], data.episode_ids[index]


def dagger_sample(run_dir: Path) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """A DAgger run's first-iteration states (pi0's own) and the expert labels it trained on; one cluster
    (the saved file does not mark where its episodes start)."""
    data = load_shard(run_dir / AGGREGATE_DIR / "rank0_iter000001.npz")
    obs = [
        {
            **{k: v[i] for k, v in data.obs.items()},
            "instruction": data.instructions[int(data.instruction_ids[i])],
        }
        for i in range(len(data.actions))
    ]
    return obs, data.actions, np.zeros(len(obs), dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policy", default=None, help="policy or checkpoint dir (default: pi0 v2)")
    parser.add_argument("--task", default="pick_place_milk")
    parser.add_argument("--episodes", type=int, default=24, help="pi0 rollouts (DAgger's and RFT's states)")
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument(
        "--demos", default=None, help="demo file, collected there if absent (default: the study's SFT demos)"
    )
    parser.add_argument("--demo-episodes", type=int, default=300, help="demos in the file (the study's 300)")
    parser.add_argument("--demo-steps", type=int, default=2048, help="demo steps scored, evenly spaced")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dagger-runs", nargs="*", default=[], help="DAgger run folders to score as well")
    parser.add_argument("--out", default=None, help="write the summary here as JSON")
    args = parser.parse_args()
    for name in ("episodes", "demo_episodes", "demo_steps", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    torch.set_num_threads(1)
    started = time.perf_counter()
    policy = load_policy(args.policy or asset_path("pi0_tiny_v2"))
    policy.eval()
    demos = Path(args.demos or f"data/demos/{args.task}_sft{args.demo_episodes}.hdf5")
    # The study's own call: the same file (reused when it holds enough demos at pi0's image settings).
    with EnvPool() as pool:
        ensure_demos(args.task, args.demo_episodes, demos, policy_env_kwargs(policy), 0.0, pool, DEMO_SEED)
    arms = []
    demo_obs, demo_actions, demo_episode = demo_sample(policy, demos, args.demo_steps)
    labels = policy.encode_actions(demo_actions)
    bc = score_labels(policy, demo_obs, labels, args.batch_size)
    arms.append(summarise("BC: demo states, expert labels", *bc, demo_episode))

    seeds = list(range(args.seed_start, args.seed_start + args.episodes))
    roll = rollouts(policy, args.task, seeds)
    expert = policy.encode_actions(roll["expert_actions"])
    dagger = score_labels(policy, roll["obs"], expert, args.batch_size)
    arms.append(summarise("DAgger, iteration 1: pi0's states, expert labels", *dagger, roll["episode"]))
    mine = score_labels(policy, roll["obs"], roll["own_tokens"], args.batch_size)
    won = np.asarray(roll["success"])[roll["episode"]]
    if won.any():
        rft = (mine[0][won], mine[1][won], roll["episode"][won])
        arms.append(summarise("RFT: pi0's states and tokens, successful episodes", *rft))
    arms.append(summarise("pi0's own tokens, every episode (its entropy)", *mine, roll["episode"]))
    for run in map(Path, args.dagger_runs):
        obs, actions, cluster = dagger_sample(run)
        scored = score_labels(policy, obs, policy.encode_actions(actions), args.batch_size)
        arms.append(summarise(f"DAgger run {run.name}, its iteration 1", *scored, cluster))

    print(f"pi0's cross-entropy on each arm's labels, {args.task} ({Path(args.policy or 'pi0_tiny_v2').name}; "
          f"{sum(roll['success'])}/{len(seeds)} rollouts succeeded; ± SE clustered by episode):")  # fmt: skip
    print("| arm | steps (episodes) | nats per token | argmax agreement | " + " | ".join(DIMS) + " |")
    print("|---|---|---|---|" + "---|" * len(DIMS))
    for arm in arms:
        dims = " | ".join(f"{arm['per_dimension'][d]['mean']:.2f}" for d in DIMS)
        se = arm["nats_per_token_se"]
        print(f"| {arm['arm']} | {arm['steps']} ({arm['episodes']}) | {arm['nats_per_token']:.2f} "
              f"{f'± {se:.2f}' if np.isfinite(se) else '(one cluster: no SE)'} | {arm['argmax_agreement']:.0%} | {dims} |")  # fmt: skip
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s")
    if args.out:
        summary = {"args": vars(args), "demos": str(demos), "rollout_success": roll["success"], "arms": arms,
                   "wall_s": wall}  # fmt: skip
        Path(args.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
