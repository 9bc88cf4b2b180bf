"""Run under torchrun with 2 CPU processes (gloo): BC or PPO with gradients all-reduced across ranks.

Each rank writes the sum of its final trainable weights and its first minibatch signature, so the test
can check that the ranks saw different data yet ended with identical weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.trainers.conftest import tiny_policy_cfg  # noqa: E402
from tests.trainers.fake_env import FakeReachVectorEnv, sabotage_training_scores  # noqa: E402
from vla_razor.policies import build_policy, load_policy  # noqa: E402
from vla_razor.trainers.distributed import init_distributed, shutdown  # noqa: E402


def main(mode: str, out: Path, demos: str | None) -> None:
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    torch.manual_seed(100 + info.rank)  # different init per rank: broadcast must fix it
    policy = build_policy(tiny_policy_cfg(finetune="full", seed=100 + info.rank))
    if mode == "bc":
        from vla_razor.data.normalization import ActionNormStats
        from vla_razor.data.steps import load_steps
        from vla_razor.trainers.bc import BCSettings, train_bc

        data = load_steps([demos], ["agentview_image"], split="train")
        policy.norm_stats = ActionNormStats.from_actions(data.actions)
        train_bc(
            policy,
            data,
            BCSettings(lr=1e-3, minibatch_size=8, num_iterations=6, log_every=2, val_every=0, save_every=3),
            out,
            {},
            dist_info=info,
            progress=False,
        )
    elif mode == "rft":
        from vla_razor.trainers.rft import RFTSettings, train_rft

        # Ranks keep different numbers of successful steps; the step counts must still pair up.
        train_rft(
            policy,
            FakeReachVectorEnv(num_envs=2, horizon=1),
            RFTSettings(lr=1e-3, num_iterations=3, num_steps=4, minibatch_size=2, save_every=3),
            out,
            {},
            dist_info=info,
            progress=False,
        )
    elif mode in ("ppo_fsdp", "ppo_replicated", "ppo_fsdp_resume"):
        from vla_razor.trainers.checkpoint import load_checkpoint
        from vla_razor.trainers.fsdp import shard_policy
        from vla_razor.trainers.ppo import PPOSettings, train_ppo

        # Sharding needs the same weights on every rank: one seed for both.
        policy = build_policy(tiny_policy_cfg(finetune="full", seed=7))
        resume_state = None
        if mode == "ppo_fsdp_resume":
            ckpt = load_checkpoint(out)
            policy = load_policy(ckpt.policy_dir)
            resume_state = ckpt.trainer_state
        if mode != "ppo_replicated":
            shard_policy(policy, info)
        train_ppo(
            policy,
            FakeReachVectorEnv(num_envs=2, horizon=2),
            PPOSettings(
                lr=1e-3,
                num_iterations=3 if mode == "ppo_fsdp_resume" else 2,
                num_steps=4,
                minibatch_size=4,
                save_every=2,
                seed=info.rank,
            ),
            out,
            {},
            dist_info=info,
            resume_state=resume_state,
            progress=False,
        )
    elif mode in ("ppo_stop_one_rank", "ppo_nan_one_rank"):
        from vla_razor.trainers.common import NonFiniteLossError
        from vla_razor.trainers.ppo import PPOSettings, train_ppo

        if info.rank == 1:
            if mode == "ppo_nan_one_rank":
                sabotage_training_scores(policy, nan_after=4)
            else:
                sabotage_training_scores(policy, shift=1.0)  # approx_kl about 0.72, far over target_kl
        try:
            train_ppo(
                policy,
                FakeReachVectorEnv(num_envs=2, horizon=1),
                PPOSettings(
                    lr=1e-3, num_iterations=3, num_steps=4, minibatch_size=2, target_kl=0.01, save_every=0
                ),
                out,
                {},
                dist_info=info,
                progress=False,
            )
            raised = None
        except NonFiniteLossError as err:
            raised = str(err)
        (out / f"raised{info.rank}.json").write_text(json.dumps({"raised": raised}))
    else:
        from vla_razor.trainers.ppo import PPOSettings, train_ppo

        train_ppo(
            policy,
            FakeReachVectorEnv(num_envs=2, horizon=1),
            PPOSettings(lr=1e-3, num_iterations=3, num_steps=4, minibatch_size=4, save_every=3),
            out,
            {},
            dist_info=info,
            progress=False,
        )
    checksum = float(
        sum(p.detach().double().sum() for p in policy.trainable_parameters() if type(p) is torch.nn.Parameter)
    )
    (out / f"rank{info.rank}.json").write_text(json.dumps({"checksum": checksum, "world": info.world_size}))
    # Every rank done before any tears the group down: a rank that destroyed it while the other was still
    # in FSDP's last collective aborted at exit on a loaded machine ("terminate called without an active
    # exception", once in a fresh-clone run).
    if info.enabled:
        torch.distributed.barrier()
    shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
