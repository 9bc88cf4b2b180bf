"""Evaluate pi0 and a list of checkpoints on the held-out suite into one results folder.

pi0 first (its success is what forgetting is measured against, its rollouts give the cached KL states),
then every checkpoint: success (``evaluation.suite``), distances from pi0 (``evaluation.divergences``) and
forgetting (``evaluation.forgetting``). Each policy's record is appended to the store as it is done, so an
interrupted run resumes; ``results.json`` (versions, seeds, N, git commit) is rewritten at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import resolve_policy_dir
from vla_razor.config import ASSETS_DIR
from vla_razor.errors import BadInputError
from vla_razor.evaluation.divergences import distances_from_pi0
from vla_razor.evaluation.forgetting import add_forgetting
from vla_razor.evaluation.identity import policy_content_hash, portable_name
from vla_razor.evaluation.kl_states import state_caches
from vla_razor.evaluation.scale_out import ScaleOutSettings, plan_units, run_units_on_ray
from vla_razor.evaluation.store import ResultsStore, run_info
from vla_razor.evaluation.suite import evaluate_policy
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.file_checks import RETRAIN, check_policy_files, read_json_object, read_yaml
from vla_razor.folder_lock import folder_lock
from vla_razor.io_utils import write_json_atomic
from vla_razor.metrics import merged_weights
from vla_razor.policies import load_policy
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import EnvPool, evaluate_under_profile, policy_env_kwargs
from vla_razor.video import video_dir as make_video_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """What an evaluation measures against and where its results go (one results folder, one pi0)."""

    # pi0: a policy, checkpoint or run folder; every checkpoint is measured against it.
    pi0: str | Path
    suite: SuiteSpec
    # The results folder (append-only: an interrupted evaluation resumes from it).
    out_dir: str | Path
    device: str = "cpu"
    # Recorded episodes per task and policy, saved into video_dir (none without one).
    videos: int = 0
    video_dir: str | Path | None = None
    progress: bool = True
    # Where the episodes run: None (or backend null) in this process's env pool, else on a Ray cluster.
    scale_out: ScaleOutSettings | None = None
    # Render every policy under this profile instead of pi0's own (a deliberate comparison, recorded in
    # the results folder's suite.json); None: pi0's profile, which every checkpoint must share.
    render_profile: str | None = None

    @classmethod
    def from_cfg(cls, cfg: DictConfig, out_dir: str | Path) -> EvalConfig:
        """From a verb's config (``pi0``, ``suite``, ``device``, ``videos``, ``video_dir``, ``scale_out``)."""
        return cls(
            pi0=cfg.pi0,
            suite=SuiteSpec.from_mapping(OmegaConf.to_container(cfg.suite, resolve=True)),
            out_dir=out_dir,
            device=str(cfg.device),
            videos=int(cfg.videos),
            video_dir=cfg.video_dir,
            scale_out=ScaleOutSettings.from_mapping(OmegaConf.to_container(cfg.scale_out, resolve=True)),
            render_profile=cfg.get("render_profile"),
        )


def run_suite(
    config: EvalConfig, checkpoints: list[tuple[str, Path]], pool: EnvPool | None = None
) -> dict[str, Any]:
    """Evaluate pi0 then every ``(id, policy dir)`` checkpoint; returns (and writes) the results document.

    ``pool`` is the command's env pool (one is started and stopped here when none is given): every
    policy's episodes reuse the envs its workers already built. With ``scale_out.backend=ray`` the
    episodes are played first as independent units on a Ray cluster and stored as they arrive; the
    divergences are then computed here, from the cached states.
    """
    if pool is None:
        with EnvPool() as own:
            return run_suite(config, checkpoints, own)
    # One writer per results folder: a second command appending to the same episode log is refused.
    with folder_lock(config.out_dir, "results folder"):
        return _run_suite(config, checkpoints, pool)


def _run_suite(config: EvalConfig, checkpoints: list[tuple[str, Path]], pool: EnvPool) -> dict[str, Any]:
    for _, policy_dir in checkpoints:  # a cut weights file: one line before anything is played or written
        check_policy_files(policy_dir)
    suite, device, progress = config.suite, config.device, config.progress
    ids = [policy_id for policy_id, _ in checkpoints]
    clashes = sorted({i for i in ids if ids.count(i) > 1 or i == "pi0"})
    if clashes:
        raise BadInputError(
            f"checkpoint id(s) {clashes} name more than one policy (or the reserved 'pi0'): two run folders "
            "with the same name in one evaluation; rename one, or evaluate them into different out_dirs"
        )
    pi0_path = resolve_policy_dir(config.pi0)
    pi0_hash = policy_content_hash(pi0_path)
    pi0 = load_policy(pi0_path, finetune="frozen", device=device)
    profile = config.render_profile or pi0.settings.render_profile
    evaluate_under_profile(pi0, profile)
    store = ResultsStore(config.out_dir, suite, pi0_hash, render_profile=profile)
    vdir = make_video_dir(config.video_dir) if config.video_dir and config.videos > 0 else None
    states = state_caches(pi0, suite, store.dir, pool) if suite.kl_states > 0 else None
    env_kwargs = policy_env_kwargs(pi0)
    pi0_record = read_policy_record(pi0_path)
    for _, policy_dir in checkpoints:  # before any episode is played, here or on a cluster
        check_like_pi0(policy_dir, pi0_record)
    hashes = {policy_id: policy_content_hash(policy_dir) for policy_id, policy_dir in checkpoints}
    if config.scale_out is not None and config.scale_out.backend == "ray":
        todo = [("pi0", pi0_hash, pi0_path), *((pid, hashes[pid], pdir) for pid, pdir in checkpoints)]
        _play_on_ray(store, [t for t in todo if store.policy_record(t[0], t[1]) is None], env_kwargs, config)

    def evaluate(
        policy: Any, policy_id: str, policy_hash: str, against: Any | None, weights: Any | None
    ) -> dict[str, Any]:
        record = evaluate_policy(
            policy,
            policy_id,
            policy_hash,
            store,
            pool,
            videos=config.videos,
            video_dir=vdir,
            progress=progress,
        )
        record.update(distances_from_pi0(against, policy, suite, states, weights))
        return record

    records: dict[str, dict[str, Any]] = {}
    base = store.policy_record("pi0", pi0_hash)
    if base is None:
        base = evaluate(pi0, "pi0", pi0_hash, None, None)  # pi0 is at distance zero from itself
        base["source"] = portable_name(pi0_path, ASSETS_DIR)
        store.append_policy_record(base)
    records["pi0"] = add_forgetting(dict(base), base, suite)
    pi0_weights = merged_weights(pi0)
    for policy_id, policy_dir in checkpoints:
        policy_hash = hashes[policy_id]
        record = store.policy_record(policy_id, policy_hash)
        if record is None:
            policy = evaluate_under_profile(load_policy(policy_dir, device=device), profile)
            record = evaluate(policy, policy_id, policy_hash, pi0, pi0_weights)
            record["source"] = portable_name(policy_dir, ASSETS_DIR)
            record.update(_training_metadata(policy_dir))
            store.append_policy_record(record)
            del policy
        records[policy_id] = add_forgetting(dict(record), base, suite)
    document = {
        "suite": suite.identity(),
        "seeds": suite.seeds,
        "n_per_task": suite.episodes,
        "pi0": {"source": portable_name(pi0_path, ASSETS_DIR), "hash": pi0_hash},
        "policies": records,
        **run_info(),
    }
    write_json_atomic(store.dir / "results.json", document)
    return document


def _play_on_ray(
    store: ResultsStore, todo: list[tuple[str, str, Path]], env_kwargs: dict[str, Any], config: EvalConfig
) -> None:
    """Play the episodes of the (id, hash, policy dir) policies as units on Ray, appending them to the
    store as each unit finishes; the records are then built here as after an in-process run."""
    scale_out = config.scale_out
    assert scale_out is not None
    units = plan_units(
        todo,
        config.suite.tasks,
        config.suite.seeds,
        env_kwargs,
        scale_out.seeds_per_unit,
        lambda pid, phash, task: set(store.finished(pid, phash, task)),
        config.suite.sampling,
    )
    log.info("scale-out: %d units of <= %d seeds on Ray", len(units), scale_out.seeds_per_unit)
    run_units_on_ray(
        units,
        scale_out,
        config.device,
        lambda unit, episodes: [
            store.append_episode(unit.policy_id, unit.policy_hash, unit.task, e) for e in episodes
        ],
        progress=config.progress,
    )


def check_like_pi0(policy_dir: Path, pi0_record: dict[str, Any]) -> None:
    """A checkpoint must be of pi0's family and see what pi0 sees (cameras, image size, render profile):
    its episodes are played with pi0's env settings."""
    record = read_policy_record(policy_dir)
    if record.get("family") != pi0_record.get("family"):
        raise BadInputError(
            f"checkpoint {str(policy_dir)!r} is a {record.get('family')!r} policy but pi0 is {pi0_record.get('family')!r}"
        )
    for key in ("image_keys", "image_size"):
        if record.get(key) != pi0_record.get(key):
            raise BadInputError(
                f"checkpoint {str(policy_dir)!r} has {key}={record.get(key)} but pi0 has {pi0_record.get(key)}; "
                "a fine-tune of pi0 keeps its cameras and image size"
            )
    mine, theirs = record.get("render_profile", "full"), pi0_record.get("render_profile", "full")
    if mine != theirs:
        raise BadInputError(
            f"checkpoint {str(policy_dir)!r} was trained on render_profile={mine!r} but pi0 on {theirs!r}; "
            "evaluate it against the pi0 it was fine-tuned from"
        )


def _training_metadata(policy_dir: Path) -> dict[str, Any]:
    """Which trainer/lr/seed/step produced a checkpoint (read from the checkpoint's config.yaml)."""
    cfg_file = policy_dir.parent / "config.yaml"
    if not cfg_file.is_file():
        return {}
    cfg = read_yaml(cfg_file, RETRAIN)
    step = policy_dir.parent.name.removeprefix("step_")
    metadata = {
        "trainer": OmegaConf.select(cfg, "trainer.name"),
        "lr": OmegaConf.select(cfg, "trainer.lr"),
        "kl_coef": OmegaConf.select(cfg, "trainer.kl_coef"),
        "seed": OmegaConf.select(cfg, "seed"),
        "step": int(step) if step.isdigit() else None,
    }
    demo_losses = checkpoint_demo_losses(policy_dir.parent / "metrics.json", metadata["step"])
    if demo_losses:  # BC-family checkpoints: the loss on the training and the held-back demos
        metadata["demo_losses"] = demo_losses
    return metadata


# What a checkpoint's metrics.json says about fitting the demos (BC and BC+KL write them at each checkpoint).
DEMO_LOSS_KEYS = ("train_demos_loss", "val_loss", "train_demos_token_accuracy", "val_token_accuracy")


def checkpoint_demo_losses(metrics_file: Path, step: int | None) -> dict[str, float]:
    """The demo losses measured at ``step`` itself; none from a checkpoint that carries older ones (one
    written on an interruption, or before checkpoints measured them)."""
    if step is None or not metrics_file.is_file():
        return {}
    metrics = read_json_object(metrics_file, RETRAIN)
    if metrics.get("demo_losses_step") != step:
        return {}
    return {key: float(metrics[key]) for key in DEMO_LOSS_KEYS if isinstance(metrics.get(key), int | float)}
