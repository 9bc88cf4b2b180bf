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
import os
import shutil
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import resolve_policy_dir
from vla_razor.data.demos import ensure_demos
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.lr_choice import learning_rate_scores
from vla_razor.evaluation.replication import load_compared_study, write_replication
from vla_razor.evaluation.runner import EvalConfig, run_suite
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
from vla_razor.rollouts.pool import config_task_specs
from vla_razor.stopwatch import utc_now
from vla_razor.workflows.study_units import (
    STATES_DIR,
    UnitResult,
    UnitSpec,
    evaluate_run,
    restore_from_study,
    train_run,
    unit_results_dir,
)
from vla_razor.workflows.sweep import (
    SFT_TRAINERS,
    check_entries,
    lr_rule,
    rule_inputs,
    run_name,
    train_overrides,
    with_lr,
)
from vla_razor.workflows.unit_dispatch import PlannedUnit, UnitSettings, run_units

log = logging.getLogger(__name__)


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
    # Where the units run: here, one after another (local), or as jobs on Ray or submitit (SLURM).
    units: UnitSettings = field(default_factory=UnitSettings)

    def __post_init__(self) -> None:
        scale_out = self.evaluation.scale_out
        if self.units.backend != "local" and scale_out is not None and scale_out.backend is not None:
            raise BadInputError(
                f"units.backend={self.units.backend} with scale_out.backend={scale_out.backend}: a study spreads "
                "either whole units (units.backend) or its evaluation's episodes (scale_out); set one to local/null"
            )

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
            units=UnitSettings.from_mapping(OmegaConf.to_container(cfg.units, resolve=True))
            if cfg.get("units") is not None
            else UnitSettings(),
        )


def rebuild_report(from_results: str, out_dir: Path, compare: str | None = None) -> dict[str, Any]:
    """``--from-results``: the report again from recorded results (a study folder or results.json).

    With ``compare`` (``--compare OTHER``), also replication.md beside it: every claim of RL's Razor checked
    in both studies, this one the reference (study A) and ``compare`` the replication (study B)."""
    # The other study is read first, so that a wrong path fails at once, not after the report's minutes.
    other = load_compared_study(compare) if compare else None
    document = load_results(from_results)
    report_dir = from_results if Path(from_results).is_dir() else out_dir
    report = write_report(document, report_dir, results_table(document))
    print(f"report rebuilt from saved results: {report}")
    if other is not None:
        path = write_replication(document, other, report_dir, (str(from_results), str(compare)))
        print(path.read_text())
        print(f"replication: {path}")
    return document


def run_study(config: StudyConfig, engine: EngineSettings) -> dict[str, Any]:
    """Train and record every unit of the study (resuming where it stopped), then write its report."""
    # One writer per study folder and results folder (each run's folder is locked by its training).
    with (
        folder_lock(config.study_dir, "study folder"),
        folder_lock(config.evaluation.out_dir, "results folder"),
    ):
        # One env pool for the whole study: demos, in-training evaluation and the suite reuse its envs.
        demos = None
        with EnvPool(engine) as pool:
            pi0_hash = _begin(config, pool)
            if config.units.backend == "local":
                _units_here(config, pool, pi0_hash)
            else:
                demos = _demos(config, pool)
        # Units elsewhere start their own pools: this one's workers are gone, and their CPUs with them.
        if config.units.backend != "local":
            _units_elsewhere(config, engine, demos, pi0_hash)
        document = study_document(config.study_dir)
        table = results_table(document)
        print(table)
        report = write_report(document, config.out_dir / "results", table)
    print(
        f"report: {report}\nrecorded study (commit it; --from-results rebuilds the report): {config.study_dir}"
    )
    return document


def _begin(config: StudyConfig, pool: EnvPool) -> str:
    """Check the sweep, then evaluate and record pi0 (or take it from the study); pi0's content hash."""
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
    pi0_hash = policy_content_hash(pi0_dir)
    restore_from_study(study_dir, results, suite, pi0_hash, profile)
    # pi0 first: its new-task success decides whether on-policy RL has any signal to work with.
    document = run_suite(evaluation, [], pool)
    write_study_unit(study_dir, "pi0", document, ["pi0"])
    keep_states(results, study_dir)
    _report_pi0(document, suite, entries)
    return pi0_hash


def _units_here(config: StudyConfig, pool: EnvPool, pi0_hash: str) -> None:
    """Every unit in this process, one after another, on the command's env pool."""
    entries, study_dir = config.sweep, config.study_dir
    for run_dir in config.runs:  # already-trained runs (e.g. a `vla-razor train -m` sweep)
        compute = {"machine": describe_machine()}
        _record_run(config, pool, Path(run_dir).name, str(run_dir), compute, utc_now())
    demos = _demos(config, pool)
    for index in range(len(entries)):
        # Entries run in order, so the runs a learning-rate rule reads are recorded when its turn comes.
        entry = _resolved(config, index, pi0_hash)
        name = run_name(entry)
        if study_unit_exists(study_dir, name, pi0_hash):
            log.info("run %s is already recorded in %s", name, study_dir)
            continue
        run_dir, overrides = _overrides(config, entry, demos)
        # What the unit cost, in this process: a resumed run counts only the training after its resume.
        started = utc_now()
        compute: dict[str, Any] = {"machine": describe_machine(), **train_run(overrides, run_dir, pool)}
        _record_run(config, pool, name, run_dir, compute, started)


def _units_elsewhere(config: StudyConfig, engine: EngineSettings, demos: Path | None, pi0_hash: str) -> None:
    """Every unit as a job of its own on Ray or submitit; each is recorded here as it finishes."""
    planned = []
    for run_dir in config.runs:  # already trained: evaluated only, as in-process
        name = Path(run_dir).name
        planned.append(PlannedUnit(name, partial(_unit_spec, config, engine, name, str(run_dir), None)))
    for index, entry in enumerate(config.sweep):
        # A learning-rate rule whose runs are not all recorded yet waits for them; it is applied when its
        # unit is submitted (``_entry_spec``), and recorded under the name of the rate it picks.
        after = _unrecorded_inputs(config, index, pi0_hash)
        name = run_name(entry) if after else run_name(_resolved(config, index, pi0_hash))
        if not after and study_unit_exists(config.study_dir, name, pi0_hash):
            log.info("run %s is already recorded in %s", name, config.study_dir)
            continue
        warm = entry.get("warm_start")
        if warm and not study_unit_exists(config.study_dir, str(warm), pi0_hash):
            after.append(str(warm))
        planned.append(
            PlannedUnit(
                name, partial(_entry_spec, config, engine, index, demos, pi0_hash), after=tuple(after)
            )
        )
    log.info(
        "%d unit(s) on %s, %d CPU(s) each", len(planned), config.units.backend, config.units.cpus_per_unit
    )

    def record(result: UnitResult) -> None:
        path = write_study_unit(
            config.study_dir, result.name, result.document, list(result.policy_ids), result.compute
        )
        log.info("recorded %s (%d checkpoints) in %s", result.name, len(result.policy_ids), path)

    run_units(planned, config.units, record, config.out_dir / "units" / "submitit")


def _unrecorded_inputs(config: StudyConfig, index: int, pi0_hash: str) -> list[str]:
    """The runs the learning-rate rule of sweep entry ``index`` reads that are not recorded yet."""
    inputs = [run_name(e) for e in rule_inputs(config.sweep, index)]
    return [name for name in inputs if not study_unit_exists(config.study_dir, name, pi0_hash)]


def _resolved(config: StudyConfig, index: int, pi0_hash: str) -> dict[str, Any]:
    """Sweep entry ``index`` with its learning-rate rule applied (``sweep.lr_rule``); an entry without a
    rule as it is."""
    entry = config.sweep[index]
    trainer = lr_rule(entry)
    if trainer is None:
        return entry
    missing = _unrecorded_inputs(config, index, pi0_hash)
    if missing:
        raise MissingFileError(
            f"sweep entry {entry} takes {trainer}'s best learning rate, but {missing} are not recorded in "
            f"{str(config.study_dir)!r} yet; run the entries before it first"
        )
    # The rule reads the runs of the entries before it, not whatever else the study folder holds, so every
    # seed of the entry gets the same rate however the folder grows.
    inputs = {run_name(e) for e in rule_inputs(config.sweep, index)}
    document = study_document(config.study_dir)
    document["policies"] = {
        pid: rec for pid, rec in document["policies"].items() if pid.rsplit("/", 1)[0] in inputs
    }
    best = learning_rate_scores(document, trainer)[0]
    log.info(
        "%s: %s's best learning rate is %g (mean best new-task success %.1f%% over %d run(s))",
        run_name(entry),
        trainer,
        best.lr,
        100 * best.mean_best,
        len(best.runs),
    )
    return with_lr(entry, best.lr)


def _entry_spec(
    config: StudyConfig, engine: EngineSettings, index: int, demos: Path | None, pi0_hash: str
) -> UnitSpec:
    entry = _resolved(config, index, pi0_hash)
    run_dir, overrides = _overrides(config, entry, demos)
    return _unit_spec(config, engine, run_name(entry), run_dir, overrides)


def _unit_spec(
    config: StudyConfig, engine: EngineSettings, name: str, run_dir: str, overrides: list[str] | None
) -> UnitSpec:
    cpus = config.units.cpus_per_unit
    return UnitSpec(
        name=name,
        run_dir=run_dir,
        train_overrides=None if overrides is None else tuple(overrides),
        evaluation=replace(
            config.evaluation, out_dir=unit_results_dir(config.out_dir, name), progress=False, scale_out=None
        ),
        study_dir=str(config.study_dir),
        all_checkpoints=config.all_checkpoints,
        # The unit's CPUs: one env worker each; its policy decodes and renders on one thread, as the
        # engine's defaults would give on a machine of exactly those CPUs.
        engine=replace(engine, num_workers=cpus, torch_threads=1, render_threads=1),
        cwd=os.getcwd(),
        task_specs=config_task_specs(),
    )


def _overrides(config: StudyConfig, entry: dict[str, Any], demos: Path | None) -> tuple[str, list[str]]:
    """A sweep entry's run folder and its `train` overrides."""
    return train_overrides(
        entry,
        config.evaluation.suite,
        str(config.evaluation.pi0),
        config.out_dir / "train",
        demos or Path("no_demos.hdf5"),
        config.train_overrides,
    )


def _demos(config: StudyConfig, pool: EnvPool) -> Path | None:
    """The SFT demos, collected once, when a sweep entry needs them."""
    return _sft_demos(config, pool) if any(e["trainer"] in SFT_TRAINERS for e in config.sweep) else None


def keep_states(results: Path, study_dir: Path) -> None:
    """Record the cached KL states beside the study: every unit's KL is measured on exactly these."""
    target = study_dir / STATES_DIR
    for cache in sorted(results.glob("kl_states*.npz")):
        if not (target / cache.name).is_file():
            target.mkdir(parents=True, exist_ok=True)
            with atomic_path(target / cache.name) as tmp:
                shutil.copyfile(cache, tmp)


def _record_run(
    config: StudyConfig, pool: EnvPool, name: str, run_dir: str, compute: dict[str, Any], started: str
) -> None:
    """Evaluate a run's scheduled checkpoints and record the unit, with its wall time (``eval_s`` counts
    the episodes this process played; stored ones from an interrupted evaluation are reused, not timed)
    and the span of this process's work on it (``started`` to now, UTC)."""
    document, ids, eval_s = evaluate_run(config.evaluation, run_dir, config.all_checkpoints, pool)
    cost = {**compute, "eval_s": eval_s, "span_utc": [started, utc_now()]}
    path = write_study_unit(config.study_dir, name, document, ids, cost)
    log.info("recorded %s (%d checkpoints) in %s", name, len(ids), path)


def _report_pi0(document: dict[str, Any], suite: SuiteSpec, entries: list[dict[str, Any]]) -> None:
    new = document["policies"]["pi0"]["tasks"][suite.new_task]
    line = (
        f"pi0 on the new task {suite.new_task!r}: {new['success_rate']:.0%} {suite.decode} success "
        f"(95% Wilson interval {new['wilson_low']:.0%}..{new['wilson_high']:.0%}, N = {new['n']})"
    )
    print(line)
    log.info(line)
    if new["success_rate"] == 0 and any(e["trainer"] in ("ppo", "rft") for e in entries):
        log.warning(
            "pi0 never succeeds on %s: on-policy RL with the binary success reward may see no success at "
            "all. Remedies: more episodes per update (num_envs, trainer.num_steps), the shaped reward "
            "(task.env.reward=shaped), or a short BC warm-up first (a bc entry, then ppo from it with "
            "warm_start; `vla-razor razor --config-name warm_start` is a worked recipe)",
            suite.new_task,
        )


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
