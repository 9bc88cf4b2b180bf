"""A study, run: train a sweep of fine-tuning runs from pi0, evaluate every checkpoint on the held-out suite,
and record each as a unit of the study (``vla-razor razor``, and ``quickstart`` on the built-in default).

The study is a sequence of independent units, one per sweep entry: train (resuming a killed run), evaluate
its checkpoints, and record them in ``study_dir/runs/<run>.json``, small enough to commit at once. pi0 is
evaluated first, so its new-task success is on record (and in the log) before any training compute is
spent. A study killed at any point loses at most the unit in progress, even on a machine without
``runs/``: ``--from-results study_dir`` rebuilds the report from the recorded units (``rebuild_report``).
The report itself is ``evaluation.study``; this module wires training and evaluation together.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import list_checkpoints, resolve_policy_dir
from vla_razor.config import config_dir
from vla_razor.data.demos import ensure_demos
from vla_razor.errors import BadInputError
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.store import ResultsStore
from vla_razor.evaluation.study import (
    load_results,
    study_document,
    study_unit_exists,
    write_report,
    write_study_unit,
)
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.evaluation.table import results_table
from vla_razor.folder_lock import folder_lock
from vla_razor.io_utils import atomic_path
from vla_razor.machine import describe_machine
from vla_razor.policies import load_policy
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import EngineSettings, EnvPool, policy_env_kwargs
from vla_razor.schemas import register_schemas
from vla_razor.stopwatch import AwakeStopwatch
from vla_razor.workflows.sweep import (
    SFT_TRAINERS,
    check_entries,
    finished,
    run_name,
    scheduled_checkpoints,
    train_overrides,
)
from vla_razor.workflows.training import run_training

log = logging.getLogger(__name__)

STATES_DIR = "states"  # the study's cached KL states (pi0's own rollouts), kept beside its units


@dataclass(frozen=True)
class StudyConfig:
    """What a study trains and evaluates, and where it keeps its runs, results and recorded units."""

    # Every unit's evaluation: pi0, the suite, the results folder (out_dir/results), device, videos.
    evaluation: EvalConfig
    # Training runs go to out_dir/train, the suite's results to out_dir/results, the report beside them.
    out_dir: Path
    # Where each unit (pi0, then every run) is recorded as small JSON: commit it, rebuild the report from it.
    study_dir: Path
    # The sweep entries to train (trainer, lr, seed, overrides, warm_start).
    sweep: list[dict[str, Any]]
    # Already-trained run folders to evaluate and record too.
    runs: list[str]
    # Every saved checkpoint on the run's save schedule (else only the last).
    all_checkpoints: bool
    # Hydra overrides applied to every training run.
    train_overrides: list[str]
    # The new task's expert demos for bc / bc_kl: how many, and the expert's action noise.
    sft_episodes: int
    sft_noise_std: float

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> StudyConfig:
        out_dir = Path(cfg.out_dir)
        return cls(
            evaluation=EvalConfig.from_cfg(cfg, out_dir=out_dir / "results"),
            out_dir=out_dir,
            study_dir=Path(cfg.study_dir) if cfg.study_dir else out_dir / "study",
            sweep=[OmegaConf.to_container(e, resolve=True) for e in cfg.sweep],
            runs=[str(r) for r in cfg.runs],
            all_checkpoints=bool(cfg.all_checkpoints),
            train_overrides=[str(o) for o in cfg.train_overrides],
            sft_episodes=int(cfg.sft_demos.episodes),
            sft_noise_std=float(cfg.sft_demos.noise_std),
        )


def rebuild_report(from_results: str, out_dir: Path) -> dict[str, Any]:
    """``--from-results``: the report again from recorded results (a study folder or results.json)."""
    document = load_results(from_results)
    report = write_report(
        document,
        from_results if Path(from_results).is_dir() else out_dir,
        results_table(document),
    )
    print(f"report rebuilt from saved results: {report}")
    return document


def run_study(config: StudyConfig, engine: EngineSettings) -> dict[str, Any]:
    """Train and record every unit of the study (resuming where it stopped), then write its report."""
    # One writer per study folder and results folder (each run's folder is locked by its training).
    with (
        folder_lock(config.study_dir, "study folder"),
        folder_lock(config.evaluation.out_dir, "results folder"),
    ):
        # One env pool for the whole study: demos, in-training evaluation and the suite reuse its envs.
        with EnvPool(engine) as pool:
            _study(config, pool)
        document = study_document(config.study_dir)
        table = results_table(document)
        print(table)
        report = write_report(document, config.out_dir / "results", table)
    print(
        f"report: {report}\nrecorded study (commit it; --from-results rebuilds the report): {config.study_dir}"
    )
    return document


def _study(config: StudyConfig, pool: EnvPool) -> None:
    entries, evaluation, study_dir = config.sweep, config.evaluation, config.study_dir
    suite = evaluation.suite
    check_entries(entries, config.runs)
    if not entries and not config.runs:
        raise BadInputError(
            "nothing to study: give a `sweep` to train or `runs=[DIR,...]` of finished training runs"
        )
    results = Path(evaluation.out_dir)
    # A study resumed on another machine (no runs/) carries on from what it recorded: pi0's episodes and the
    # cached states are not played again (another CPU could round a greedy action differently).
    pi0_dir = resolve_policy_dir(evaluation.pi0)
    profile = evaluation.render_profile or read_policy_record(pi0_dir).get("render_profile", "full")
    restore_from_study(study_dir, results, suite, policy_content_hash(pi0_dir), profile)
    # pi0 first: its new-task success decides whether on-policy RL has any signal to work with.
    document = run_suite(evaluation, [], pool)
    write_study_unit(study_dir, "pi0", document, ["pi0"])
    keep_states(results, study_dir)
    _report_pi0(document, suite, entries)
    for run_dir in config.runs:  # already-trained runs (e.g. a `vla-razor train -m` sweep)
        compute = {"machine": describe_machine()}
        _record_run(config, pool, Path(run_dir).name, str(run_dir), compute)
    demos = _sft_demos(config, pool) if any(e["trainer"] in SFT_TRAINERS for e in entries) else None
    for entry in entries:
        name = run_name(entry)
        if study_unit_exists(study_dir, name, document["pi0"]["hash"]):
            log.info("run %s is already recorded in %s", name, study_dir)
            continue
        run_dir, overrides = train_overrides(
            entry,
            suite,
            str(evaluation.pi0),
            config.out_dir / "train",
            demos or Path("no_demos.hdf5"),
            config.train_overrides,
        )
        # What the unit cost, in this process: a resumed run counts only the training after its resume.
        compute: dict[str, Any] = {"machine": describe_machine()}
        if not finished(run_dir):
            resumed = bool(list_checkpoints(run_dir))
            if resumed:
                overrides.append("resume=true")
            with AwakeStopwatch() as watch:  # a study paused with SIGSTOP does not count the pause
                _train(overrides, pool)
            compute.update(train_s=round(watch.seconds, 1), train_resumed=resumed)
        _record_run(config, pool, name, run_dir, compute)


def restore_from_study(
    study_dir: Path, results: Path, suite: SuiteSpec, pi0_hash: str, render_profile: str
) -> None:
    """Seed an empty results folder with the study's recorded pi0 and its cached KL states."""
    if not study_unit_exists(study_dir, "pi0", pi0_hash):
        return
    store = ResultsStore(results, suite, pi0_hash, render_profile=render_profile)
    if store.policy_record("pi0", pi0_hash) is None:
        store.append_policy_record(load_results(study_dir)["policies"]["pi0"])
        log.info("pi0's record restored from %s", study_dir)
    for cache in sorted((study_dir / STATES_DIR).glob("kl_states*.npz")):
        if not (results / cache.name).is_file():
            shutil.copyfile(cache, results / cache.name)


def keep_states(results: Path, study_dir: Path) -> None:
    """Record the cached KL states beside the study: every unit's KL is measured on exactly these."""
    target = study_dir / STATES_DIR
    for cache in sorted(results.glob("kl_states*.npz")):
        if not (target / cache.name).is_file():
            target.mkdir(parents=True, exist_ok=True)
            with atomic_path(target / cache.name) as tmp:
                shutil.copyfile(cache, tmp)


def _record_run(config: StudyConfig, pool: EnvPool, name: str, run_dir: str, compute: dict[str, Any]) -> None:
    """Evaluate a run's scheduled checkpoints and record the unit, with its wall time (``eval_s`` counts
    the episodes this process played; stored ones from an interrupted evaluation are reused, not timed)."""
    checkpoints = scheduled_checkpoints(run_dir, config.all_checkpoints)
    with AwakeStopwatch() as watch:
        document = run_suite(config.evaluation, checkpoints, pool)
    compute = {**compute, "eval_s": round(watch.seconds, 1)}
    path = write_study_unit(config.study_dir, name, document, [pid for pid, _ in checkpoints], compute)
    log.info("recorded %s (%d checkpoints) in %s", name, len(checkpoints), path)


def _report_pi0(document: dict[str, Any], suite: SuiteSpec, entries: list[dict[str, Any]]) -> None:
    new = document["policies"]["pi0"]["tasks"][suite.new_task]
    line = (
        f"pi0 on the new task {suite.new_task!r}: {new['success_rate']:.0%} greedy success "
        f"(95% Wilson interval {new['wilson_low']:.0%}..{new['wilson_high']:.0%}, N = {new['n']})"
    )
    print(line)
    log.info(line)
    if new["success_rate"] == 0 and any(e["trainer"] in ("ppo", "rft") for e in entries):
        log.warning(
            "pi0 never succeeds on %s: on-policy RL with the binary success reward may see no success at "
            "all. Remedies: more episodes per update (num_envs, trainer.num_steps), the shaped reward "
            "(task.env.reward=shaped), or a short BC warm-up first (a bc entry, then ppo from it)",
            suite.new_task,
        )


def _train(overrides: list[str], pool: EnvPool) -> None:
    register_schemas()  # a no-op under the CLI, needed when called from Python
    if GlobalHydra.instance().is_initialized():  # inside `vla-razor razor`: same config dir, compose directly
        cfg = compose(config_name="train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="razor_train"):
            cfg = compose(config_name="train", overrides=overrides)
    log.info("training: %s", " ".join(overrides))
    run_training(cfg, pool)


def _sft_demos(config: StudyConfig, pool: EnvPool) -> Path:
    """The new task's SFT demos, recorded with pi0's cameras/image size (collected once)."""
    new_task = config.evaluation.suite.new_task
    pi0 = load_policy(resolve_policy_dir(config.evaluation.pi0), finetune="frozen")
    # The count is part of the name: BC trains on every demo in the file, so a study asking for 300 must not
    # pick up a quickstart's 30, nor the reverse.
    path = Path("data/demos") / f"{new_task}_sft{config.sft_episodes}.hdf5"
    return ensure_demos(
        new_task,
        config.sft_episodes,
        path,
        policy_env_kwargs(pi0),
        config.sft_noise_std,
        pool,
        seed=50_000,
    )
