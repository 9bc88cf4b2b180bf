"""One fine-tuning run from a resolved ``train`` config: the ``train`` verb, and each run of a study.

The policy starts from ``policy.pretrained`` (for the tiny default: the committed pi0 checkpoint) with
``policy.finetune`` = lora | full. ``resume=true`` continues the run in ``out_dir`` from its latest
checkpoint (weights, optimizer, scheduler, every RNG, counters), so the continuation matches an
uninterrupted run. Under ``torchrun --nproc_per_node N`` each rank runs its own envs and seeds.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import latest_checkpoint, resolve_policy_dir
from vla_razor.data.steps import load_steps
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.forecast import check_calibration, forecast_forgetting, load_calibration
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.in_training import InTrainingEvaluator
from vla_razor.folder_lock import folder_lock
from vla_razor.policies import build_policy, load_policy
from vla_razor.policies.factory import rebuild_reference, reference_spec
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.rollouts.vector import PoolVectorEnv
from vla_razor.trainers.base import Trainer, TrainingRun
from vla_razor.trainers.bc import BCSettings, BehaviourCloning
from vla_razor.trainers.checkpoint import load_checkpoint
from vla_razor.trainers.common import TrainerSettings
from vla_razor.trainers.dagger import Dagger, DaggerSettings
from vla_razor.trainers.distributed import DistInfo, init_distributed, shutdown
from vla_razor.trainers.fsdp import shard_policy
from vla_razor.trainers.kl_monitor import Forecaster
from vla_razor.trainers.logger import MetricLogger
from vla_razor.trainers.loop import run_training as run_loop
from vla_razor.trainers.on_policy import OnPolicy
from vla_razor.trainers.ppo import PPOSettings, ppo_update
from vla_razor.trainers.rft import RFTSettings, rft_update
from vla_razor.trainers.rng import seed_everything
from vla_razor.workflows.config_blocks import engine_settings, env_kwargs_from_cfg

log = logging.getLogger(__name__)
# Which settings class (and so which loop) each configs/trainer/<name>.yaml selects.
TRAINERS: dict[str, type[TrainerSettings]] = {
    "bc": BCSettings,
    "bc_kl": BCSettings,
    "ppo": PPOSettings,
    "rft": RFTSettings,
    "dagger": DaggerSettings,
}


def load_training_policy(
    cfg: DictConfig, run_dir: Path, dist_info: DistInfo
) -> tuple[Any, dict[str, Any] | None]:
    """pi0 wrapped for fine-tuning, or the policy of the latest checkpoint when resuming."""

    policy_cfg = OmegaConf.to_container(cfg.policy, resolve=True)
    assert isinstance(policy_cfg, dict)
    if not cfg.resume:
        if latest_checkpoint(run_dir) is not None:
            raise BadInputError(
                f"{str(run_dir)!r} already holds checkpoints; pass resume=true or choose another out_dir"
            )
        return build_policy(policy_cfg), None
    ckpt = load_checkpoint(run_dir) if (run_dir / "checkpoints").is_dir() else None
    if ckpt is None:
        raise MissingFileError(f"resume=true but {str(run_dir)!r} has no checkpoint to resume from")
    saved_family = OmegaConf.select(ckpt.config, "policy.family")
    if saved_family != policy_cfg.get("family"):
        raise BadInputError(
            f"checkpoint in {str(run_dir)!r} is a {saved_family!r} policy, not policy={policy_cfg.get('family')}"
        )
    if ckpt.trainer_state.get("trainer") != cfg.trainer.name.replace("bc_kl", "bc"):
        raise BadInputError(
            f"checkpoint in {str(run_dir)!r} was written by trainer {ckpt.trainer_state.get('trainer')!r}"
        )
    policy = load_policy(ckpt.policy_dir, device=policy_cfg.get("device"))
    if policy.finetune == "full":
        # The frozen reference must stay pi0, not the weights of the checkpoint we resume from: the
        # loaded copy holds the resumed weights. Rebuild pi0 from what the policy recorded at build time
        # (or from policy.pretrained when given), so the KL terms keep measuring against pi0.
        if policy_cfg.get("pretrained"):
            policy.settings.reference = reference_spec(policy_cfg)
        pi0 = rebuild_reference(policy, device=policy_cfg.get("device"))
        policy.reference_model.load_state_dict(pi0.model.state_dict())
        del pi0
    return policy, ckpt.trainer_state


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    """The trainer's typed settings from ``cfg.trainer`` (unknown keys are an error that lists the valid ones)."""
    name = str(cfg.trainer.name)
    if name not in TRAINERS:
        raise BadInputError(f"unknown trainer {name!r}; valid trainers: {', '.join(TRAINERS)}")
    values = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(values, dict)
    return TRAINERS[name].from_mapping(values)


def run_training(cfg: DictConfig, pool: EnvPool | None = None) -> dict[str, float]:
    """Train as ``cfg`` says; ``pool`` is the env pool of an enclosing command (``vla-razor razor``),
    else one is started for this run when it needs envs (PPO/RFT rollouts, in-training evaluation)."""
    settings = trainer_settings(cfg)
    evaluating = settings.eval_every > 0
    if pool is None and (evaluating or not isinstance(settings, BCSettings)):
        with EnvPool(engine_settings(cfg)) as own:
            return run_training(cfg, own)
    dist_info = init_distributed(str(cfg.policy.get("device", "cpu")))
    run_dir = Path(cfg.out_dir)
    # One writer per run folder: rank 0 writes it (checkpoints, logs), the other ranks only compute.
    with folder_lock(run_dir, "training run folder") if dist_info.is_main else contextlib.nullcontext():
        return _train(cfg, settings, pool, dist_info, run_dir)


def _train(
    cfg: DictConfig, settings: TrainerSettings, pool: EnvPool | None, dist_info: DistInfo, run_dir: Path
) -> dict[str, float]:
    name = settings.name
    evaluating = settings.eval_every > 0
    seed_everything(int(cfg.seed) + dist_info.rank)
    if cfg.get("torch_threads"):
        torch.set_num_threads(int(cfg.torch_threads))
    policy, resume_state = load_training_policy(cfg, run_dir, dist_info)
    fsdp = cfg.get("fsdp") or {}
    if fsdp.get("enabled"):
        if int(cfg.trainer.get("eval_every", 0) or 0) > 0:
            raise BadInputError(
                "trainer.eval_every > 0 with fsdp.enabled=true: in-training evaluation runs episodes of "
                "different lengths per rank, which sharded forwards cannot; evaluate saved checkpoints "
                "with `vla-razor eval` instead (trainer.eval_every=0)"
            )
        shard_policy(policy, dist_info)
    env_kwargs = {**env_kwargs_from_cfg(cfg), **policy_env_kwargs(policy)}
    logger = MetricLogger(
        run_dir,
        enabled=dist_info.is_main,
        tensorboard=bool(cfg.logging.tensorboard),
        wandb=OmegaConf.to_container(cfg.logging.wandb, resolve=True),
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    forecaster = make_forecaster(cfg, settings.forecast_calibration)
    evaluator = None
    if evaluating:
        assert pool is not None
        evaluator = InTrainingEvaluator(
            run_dir,
            env_kwargs,
            pool,
            episodes=int(cfg.eval.episodes),
            seed=int(cfg.eval.seed),
            kl_states=int(cfg.eval.kl_states),
            kl_state_seeds=int(cfg.eval.kl_state_seeds),
            decode=str(cfg.eval.get("decode", "greedy")),
            temperature=float(cfg.eval.get("temperature", 1.0)),
            logger=logger,
            enabled=dist_info.is_main,
        )
        if resume_state is None:
            evaluator(policy, 0)  # the starting point (pi0) is the first point of every curve
    run = TrainingRun(
        run_dir,
        cfg,
        resume_state=resume_state,
        dist_info=dist_info,
        evaluator=evaluator,
        logger=logger,
        forecaster=forecaster,
    )
    try:
        if isinstance(settings, BCSettings):
            trainer: Trainer[Any] = _behaviour_cloning(policy, cfg, settings)
        else:
            assert pool is not None
            trainer = _on_policy(cfg, settings, env_kwargs, pool, dist_info, policy)
        result = run_loop(trainer, policy, run)
    finally:
        shutdown(dist_info)
    if dist_info.is_main:
        print(f"{name} on {cfg.task.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items())))
        print(f"checkpoints: {run_dir / 'checkpoints'}")
    return result


def _behaviour_cloning(policy: Any, cfg: DictConfig, settings: BCSettings) -> BehaviourCloning:
    """BC (or BC+KL) on the demo files the config names, checked against what the policy reads."""
    paths = [str(p) for p in cfg.demos]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise MissingFileError(
            f"demo file(s) {missing} not found; collect them with `vla-razor demos task={cfg.task.name}`"
        )
    keys = policy.settings.input_keys
    profile = str(policy.settings.render_profile)
    train = load_steps(paths, keys, split="train", render_profile=profile)
    val = (
        load_steps(paths, keys, split="valid", allow_empty=True, render_profile=profile)
        if settings.val_every
        else None
    )
    check_image_size(train, policy)
    return BehaviourCloning(settings, train, val)


def make_forecaster(cfg: DictConfig, calibration_file: str | None) -> Forecaster | None:
    """The live forgetting forecast from a calibration, checked against this run's task and pi0."""
    if calibration_file is None:
        return None
    pretrained = cfg.policy.get("pretrained")
    if not pretrained:
        raise BadInputError(
            "trainer.forecast_calibration needs policy.pretrained (the pi0 the calibration was fitted against)"
        )
    pi0_hash = policy_content_hash(resolve_policy_dir(pretrained))
    # Checked now (one line), not at the first measurement.
    calibration = check_calibration(
        load_calibration(calibration_file), suite=None, pi0_hash=pi0_hash, new_task=str(cfg.task.name)
    )
    if str(cfg.trainer.name) in ("bc", "bc_kl"):
        log.warning(
            "forecast for %s: its KL monitor measures on demo states, while the calibration was fitted on KL "
            "over pi0's own new-task rollouts; read the forecast as indicative only",
            cfg.trainer.name,
        )

    def forecaster(kl: float) -> dict[str, float]:
        f = forecast_forgetting(calibration, kl, suite=calibration.suite, pi0_hash=pi0_hash)
        return {
            "forecast_forgetting": f.forgetting,
            "forecast_forgetting_low": f.low,
            "forecast_forgetting_high": f.high,
            "forecast_extrapolated": float(f.extrapolated),
        }

    return forecaster


def check_image_size(data: Any, policy: Any) -> None:
    size = int(policy.settings.image_size)
    for key, value in data.obs.items():
        if key.endswith("_image") and tuple(value.shape[1:3]) != (size, size):
            raise BadInputError(
                f"demo images {key} are {value.shape[1]}x{value.shape[2]} but the policy expects "
                f"{size}x{size}; recollect demos with env.image_size={size}"
            )


def _on_policy(
    cfg: DictConfig,
    settings: TrainerSettings,
    env_kwargs: dict[str, Any],
    pool: EnvPool,
    dist_info: DistInfo,
    policy: Any,
) -> OnPolicy:
    """PPO, RFT or DAgger on rollout envs of the command's pool (built once, shared with in-training
    evaluation); the collector double-buffers them. DAgger's envs also label every state with the
    relabelling expert's action."""
    kwargs = dict(env_kwargs)
    if isinstance(settings, DaggerSettings):
        kwargs["expert_labels"] = True
    reward = settings.reward if isinstance(settings, PPOSettings) else "binary"
    if reward == "shaped":
        kwargs["reward"] = "shaped"
    venv = PoolVectorEnv(pool, kwargs, int(cfg.num_envs), name=f"{settings.name}-rank{dist_info.rank}")
    if isinstance(settings, PPOSettings):
        return OnPolicy("ppo", venv, settings, ppo_update, reward=reward)
    if isinstance(settings, DaggerSettings):
        return Dagger(venv, settings, Path(cfg.out_dir), policy.settings.input_keys)
    assert isinstance(settings, RFTSettings)
    return OnPolicy("rft", venv, settings, rft_update, reward=reward)
