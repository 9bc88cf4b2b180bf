"""``vla-razor razor``: train a sweep of fine-tuning runs from pi0, evaluate every checkpoint on the
held-out suite, and write the study report (Pareto plot, forgetting vs KL with R^2, report.md)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from vla_razor.commands.common import engine_settings
from vla_razor.commands.eval import expand_checkpoints, results_table, run_suite
from vla_razor.config import config_dir
from vla_razor.errors import BadInputError
from vla_razor.evaluation.study import load_results, write_report
from vla_razor.evaluation.suite import SuiteSpec
from vla_razor.rollouts import EnvPool
from vla_razor.schemas import register_schemas
from vla_razor.trainers.checkpoint import list_checkpoints

log = logging.getLogger(__name__)


def train_overrides(
    entry: dict[str, Any], suite: SuiteSpec, pi0: str, train_dir: Path, demos: Path, extra: list[str]
) -> tuple[str, list[str]]:
    trainer = str(entry["trainer"])
    name = "_".join(f"{k}{entry[k]}" for k in ("lr", "seed") if k in entry)
    run_dir = train_dir / f"{trainer}_{name}" if name else train_dir / trainer
    overrides = [
        f"trainer={trainer}",
        f"task={suite.new_task}",
        f"policy.pretrained={pi0}",
        f"out_dir={run_dir}",
        f"demos=[{demos}]",
        "trainer.keep_last=null",
    ]
    if "lr" in entry:
        overrides.append(f"trainer.lr={entry['lr']}")
    if "seed" in entry:
        overrides.append(f"seed={entry['seed']}")
    overrides += [str(o) for o in entry.get("overrides", [])] + list(extra)
    return str(run_dir), overrides


def run(cfg: DictConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    if cfg.from_results:
        document = load_results(cfg.from_results)
        report = write_report(
            document,
            cfg.from_results if Path(cfg.from_results).is_dir() else out_dir,
            results_table(document),
        )
        print(f"report rebuilt from saved results: {report}")
        return document

    suite = SuiteSpec.from_mapping(OmegaConf.to_container(cfg.suite, resolve=True))
    # One env pool for the whole study: demos, in-training evaluation and the suite reuse its envs.
    with EnvPool(engine_settings(cfg)) as pool:
        document = _study(cfg, suite, out_dir, pool)
    table = results_table(document)
    print(table)
    report = write_report(document, out_dir / "results", table)
    print(f"report: {report}")
    return document


def _study(cfg: DictConfig, suite: SuiteSpec, out_dir: Path, pool: EnvPool) -> dict[str, Any]:
    run_dirs = [str(r) for r in cfg.runs]
    if cfg.sweep:
        demos = _sft_demos(cfg, suite, pool)
        for entry in cfg.sweep:
            entry = OmegaConf.to_container(entry, resolve=True)
            run_dir, overrides = train_overrides(
                entry, suite, str(cfg.pi0), out_dir / "train", demos, [str(o) for o in cfg.train_overrides]
            )
            if list_checkpoints(run_dir) and _finished(run_dir):
                log.info("reusing finished run %s", run_dir)
            else:
                if list_checkpoints(run_dir):
                    overrides.append("resume=true")
                _train(overrides, pool)
            run_dirs.append(run_dir)
    if not run_dirs:
        raise BadInputError(
            "nothing to study: give a `sweep` to train or `runs=[DIR,...]` of finished training runs"
        )
    checkpoints = expand_checkpoints(run_dirs, bool(cfg.all_checkpoints))
    return run_suite(
        cfg.pi0,
        checkpoints,
        suite,
        out_dir / "results",
        videos=int(cfg.videos),
        video_dir=cfg.video_dir,
        device=str(cfg.device),
        pool=pool,
    )


def _finished(run_dir: str | Path) -> bool:
    from vla_razor.trainers.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir)
    settings = ckpt.trainer_state.get("settings", {})
    done = ckpt.trainer_state.get("update", ckpt.trainer_state.get("step"))
    total = settings.get("num_iterations")
    if total is None:  # checkpoints written before the trainers shared one budget name
        total = settings.get("max_steps") or settings.get("total_updates") or settings.get("iterations")
    return total is not None and done >= total


def _train(overrides: list[str], pool: EnvPool) -> None:
    from vla_razor.commands import train

    register_schemas()  # a no-op under the CLI, needed when called from Python
    if GlobalHydra.instance().is_initialized():  # inside `vla-razor razor`: same config dir, compose directly
        cfg = compose(config_name="train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="razor_train"):
            cfg = compose(config_name="train", overrides=overrides)
    log.info("training: %s", " ".join(overrides))
    train.run(cfg, pool)


def _sft_demos(cfg: DictConfig, suite: SuiteSpec, pool: EnvPool) -> Path:
    """The new task's SFT demos, recorded with pi0's cameras/image size (collected once)."""
    from vla_razor.commands.pretrain import ensure_demos
    from vla_razor.evaluation.suite import policy_env_kwargs
    from vla_razor.policies import load_policy
    from vla_razor.trainers.checkpoint import resolve_policy_dir

    pi0 = load_policy(resolve_policy_dir(cfg.pi0), finetune="frozen")
    path = Path("data/demos") / f"{suite.new_task}_sft.hdf5"
    return ensure_demos(
        suite.new_task,
        int(cfg.sft_demos.episodes),
        path,
        policy_env_kwargs(pi0),
        float(cfg.sft_demos.noise_std),
        pool,
        seed=50_000,
    )
