"""``vla-razor pretrain``: build pi0 for the built-in default.

1. collect (or reuse) expert demos of every prior-skill task and a small share of new-task demos;
2. behaviour-clone a fresh tiny VLA on all of them (multi-task, language-conditioned), with
   normalisation statistics computed from the demos and stored in the checkpoint;
3. measure pi0's success on every suite task over held-out seeds and write the table;
4. optionally export the final policy (``export=DIR``), e.g. into ``vla_razor/assets/pi0_tiny``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import latest_checkpoint
from vla_razor.data.demos import ensure_demos
from vla_razor.data.normalization import ActionNormStats
from vla_razor.data.steps import load_steps
from vla_razor.envs import TASKS
from vla_razor.errors import BadInputError
from vla_razor.evaluation.success import evaluate_success, heldout_seeds
from vla_razor.io_utils import atomic_path, write_json_atomic
from vla_razor.policies import build_policy, load_policy
from vla_razor.policies.tiny.configuration_tiny_vla import TinyPolicyConfig
from vla_razor.policies.tiny.processing_tiny_vla import split_words
from vla_razor.rollouts import EnvPool
from vla_razor.trainers.bc import BCSettings, train_bc
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.rng import seed_everything
from vla_razor.workflows.config_blocks import engine_settings

log = logging.getLogger(__name__)


def instruction_words() -> list[str]:
    words: set[str] = set()
    for spec in TASKS.values():
        words.update(split_words(spec.instruction))
    return sorted(words)


def run(cfg: DictConfig) -> dict[str, Any]:
    with EnvPool(engine_settings(cfg)) as pool:
        return _pretrain(cfg, pool)


def _pretrain(cfg: DictConfig, pool: EnvPool) -> dict[str, Any]:
    seed_everything(int(cfg.seed))
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    suite = cfg.suite
    tasks = [*suite.prior_tasks, suite.new_task]
    policy_cfg = OmegaConf.to_container(cfg.policy, resolve=True)
    assert isinstance(policy_cfg, dict)
    # pi0 is a fresh tiny VLA: its typed config says what the demos must record (and rejects typos).
    arch = TinyPolicyConfig.from_mapping(policy_cfg)
    settings = BCSettings.from_mapping(OmegaConf.to_container(cfg.trainer, resolve=True))  # type: ignore[arg-type]
    cameras = tuple(k[: -len("_image")] for k in arch.image_keys)
    env_kwargs = {
        "cameras": cameras,
        "image_size": int(arch.image_size),
        "render_profile": arch.render_profile,
    }
    demo_dir = Path(cfg.demos.dir)

    paths = []
    # Seeds per task follow the order of demos.episodes, so a re-run reuses (or re-collects) the same demos.
    for i, (task, n) in enumerate(cfg.demos.episodes.items()):
        if int(n) <= 0:
            continue
        paths.append(
            ensure_demos(
                str(task),
                int(n),
                demo_dir / f"{task}_pretrain.hdf5",
                env_kwargs,
                float(cfg.demos.noise_std),
                pool,
                seed=1000 * (i + 1),
            )
        )
    if not paths:
        raise BadInputError("demos.episodes asks for no demonstrations; give at least one task a count > 0")

    keys = list(arch.image_keys) + (["proprio"] if arch.use_proprio else [])
    train = load_steps(paths, keys, split="train", render_profile=arch.render_profile)
    val = load_steps(paths, keys, split="valid", allow_empty=True, render_profile=arch.render_profile)
    run_dir = Path(cfg.out_dir)
    resume_state = None
    if cfg.resume:
        ckpt = load_checkpoint(run_dir)
        policy = load_policy(ckpt.policy_dir)
        resume_state = ckpt.trainer_state
    else:
        if latest_checkpoint(run_dir) is not None:
            raise BadInputError(
                f"{str(run_dir)!r} already holds checkpoints; pass resume=true or choose another out_dir"
            )
        stats = ActionNormStats.from_actions(train.actions)
        policy = build_policy(
            {**policy_cfg, "norm_stats": stats.to_dict(), "extra_words": instruction_words()}
        )
    print(
        f"pi0: {policy.num_parameters():,} parameters; {len(train)} training steps from {len(paths)} demo files"
    )
    logger = MetricLogger(
        run_dir,
        tensorboard=bool(cfg.logging.tensorboard),
        wandb=OmegaConf.to_container(cfg.logging.wandb, resolve=True),
    )
    train_bc(policy, train, settings, run_dir, cfg, val_data=val, resume_state=resume_state, logger=logger)

    measured = evaluate_success(policy, pool, tasks, env_kwargs, heldout_seeds(int(cfg.eval_episodes)))
    results = {}
    for task, res in measured.items():
        results[task] = res.to_dict()
        role = "new task" if task == suite.new_task else "prior skill"
        print(f"{task:<22} {role:<12} success {res.success_rate:6.1%} ± {res.sem:.1%} (n={res.n})")
    table = success_table(results, suite.new_task)
    write_json_atomic(
        run_dir / "pi0_success.json", {"tasks": results, "suite": OmegaConf.to_container(suite)}
    )
    with atomic_path(run_dir / "pi0_success.md") as tmp:
        tmp.write_text(table)
    print(table)
    if cfg.export:
        export_policy(policy, Path(cfg.export), run_dir)
    return results


def success_table(results: dict[str, dict[str, Any]], new_task: str) -> str:
    lines = ["| task | role | success | SE | n |", "|---|---|---|---|---|"]
    for task, r in results.items():
        role = "new task" if task == new_task else "prior skill"
        lines.append(f"| {task} | {role} | {r['success_rate']:.1%} | {r['sem']:.1%} | {r['n']} |")
    return "\n".join(lines) + "\n"


def export_policy(policy: Any, target: Path, run_dir: Path) -> None:
    """Replace ``target`` with the final policy (+ its success table), atomically."""
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp)
    for name in ("pi0_success.json", "pi0_success.md"):
        shutil.copy2(run_dir / name, tmp / name)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    print(f"exported pi0 to {target}")
