"""``vla-razor train trainer=bc|bc_kl|ppo|rft task=<new task> policy=tiny|openvla``: fine-tune pi0.

The policy starts from ``policy.pretrained`` (for the tiny default: the committed pi0 checkpoint) with
``policy.finetune`` = lora | full. ``resume=true`` continues the run in ``out_dir`` from its latest
checkpoint (weights, optimizer, scheduler, every RNG, counters), so the continuation matches an
uninterrupted run. Under ``torchrun --nproc_per_node N`` each rank runs its own envs and seeds.
"""

from __future__ import annotations

from omegaconf import DictConfig

from vla_razor.workflows.training import run_training


def run(cfg: DictConfig) -> dict[str, float]:
    return run_training(cfg)
