"""One unit of a study, whole: train a run (resuming a killed one), then evaluate its checkpoints.

The in-process study (``units.backend: local``) calls :func:`train_run` and :func:`evaluate_run` on the
command's env pool. A study spread over a cluster sends a :class:`UnitSpec` to another process, which
calls :func:`run_unit`: the same two steps with a pool of its own, in the driver's working directory,
evaluating into a results folder of its own (``out_dir/units/<run>/results``, seeded from the study
folder with pi0's record and the cached KL states, so neither is played again). It returns the unit's
results document, and the driver records it in the study folder: the driver stays its only writer.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from vla_razor.checkpoints import list_checkpoints, resolve_policy_dir
from vla_razor.config import config_dir, register_resolvers
from vla_razor.errors import MissingFileError
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.store import ResultsStore
from vla_razor.evaluation.study import load_results, study_unit_exists
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.io_utils import atomic_path
from vla_razor.machine import describe_machine
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import EngineSettings, EnvPool
from vla_razor.rollouts.worker import RobosuiteEnvFactory
from vla_razor.schemas import register_schemas
from vla_razor.stopwatch import AwakeStopwatch, utc_now
from vla_razor.workflows.sweep import finished, scheduled_checkpoints
from vla_razor.workflows.training import run_training

log = logging.getLogger(__name__)

STATES_DIR = "states"  # the study's cached KL states (pi0's own rollouts), kept beside its units


@dataclass(frozen=True)
class UnitSpec:
    """Everything a unit needs in a fresh process on any node (paths on a filesystem every node shares)."""

    # The run's name: its folder under out_dir/train and its unit file study_dir/runs/<name>.json.
    name: str
    run_dir: str
    # Hydra overrides of the run's `train` config (as the in-process study composes it); None: the run
    # is already trained (`runs=[...]`), evaluate it only.
    train_overrides: tuple[str, ...] | None
    # The unit's evaluation: the study's pi0 and suite, into the unit's own results folder.
    evaluation: EvalConfig
    # Read only: pi0's recorded unit and the cached KL states.
    study_dir: str
    all_checkpoints: bool
    # The unit's env pool (its workers are the CPUs the unit asked for).
    engine: EngineSettings
    # The driver's working directory: relative paths (runs/, data/demos/) mean there what they mean
    # in the driver, so a unit records the same policy sources as an in-process one.
    cwd: str
    # The driver's config-defined tasks: a node's fresh process knows only the built-in ones.
    task_specs: tuple[Any, ...] = ()


@dataclass(frozen=True)
class UnitResult:
    """What a unit sends back to the driver: its results document, the policies it adds, its cost."""

    name: str
    document: dict[str, Any]
    policy_ids: tuple[str, ...]
    compute: dict[str, Any]


def run_unit(spec: UnitSpec) -> UnitResult:
    """Train (or resume) and evaluate one unit in this process: what a Ray task or a SLURM job runs."""
    if not Path(spec.cwd).is_dir():
        raise MissingFileError(
            f"unit {spec.name}: the driver's working directory {spec.cwd!r} does not exist on this node "
            f"({describe_machine()}); run `vla-razor razor` from a folder on the shared filesystem"
        )
    started = utc_now()
    with contextlib.chdir(spec.cwd):
        compute: dict[str, Any] = {"machine": describe_machine()}
        settings, factory = spec.engine, RobosuiteEnvFactory(spec.task_specs)
        with EnvPool(settings, env_factory=factory) as pool:
            if spec.train_overrides is not None:
                compute.update(train_run(list(spec.train_overrides), spec.run_dir, pool))
            evaluation = spec.evaluation
            pi0_dir = resolve_policy_dir(evaluation.pi0)
            profile = evaluation.render_profile or read_policy_record(pi0_dir).get("render_profile", "full")
            restore_from_study(
                Path(spec.study_dir),
                Path(evaluation.out_dir),
                evaluation.suite,
                policy_content_hash(pi0_dir),
                profile,
            )
            document, ids, eval_s = evaluate_run(evaluation, spec.run_dir, spec.all_checkpoints, pool)
    span = [started, utc_now()]  # this process's part: units that ran at once overlap here
    return UnitResult(spec.name, document, tuple(ids), {**compute, "eval_s": eval_s, "span_utc": span})


def train_run(overrides: list[str], run_dir: str | Path, pool: EnvPool) -> dict[str, Any]:
    """Train a run to its whole budget (resuming from its latest checkpoint); what it cost in this
    process (a resumed run counts only the training after its resume). A finished run costs nothing."""
    if finished(run_dir):
        return {}
    resumed = bool(list_checkpoints(run_dir))
    if resumed:
        overrides = [*overrides, "resume=true"]
    with AwakeStopwatch() as watch:  # a study paused with SIGSTOP does not count the pause
        train(overrides, pool)
    return {"train_s": round(watch.seconds, 1), "train_resumed": resumed}


def evaluate_run(
    evaluation: EvalConfig, run_dir: str | Path, all_checkpoints: bool, pool: EnvPool
) -> tuple[dict[str, Any], list[str], float]:
    """Evaluate a run's scheduled checkpoints: the results document, the run's policy ids, and the wall
    seconds (the episodes this process played; stored ones from an interrupted evaluation are reused)."""
    checkpoints = scheduled_checkpoints(run_dir, all_checkpoints)
    with AwakeStopwatch() as watch:
        document = run_suite(evaluation, checkpoints, pool)
    return document, [pid for pid, _ in checkpoints], round(watch.seconds, 1)


def train(overrides: list[str], pool: EnvPool) -> None:
    """One training run from the ``train`` config with ``overrides``, on ``pool``."""
    register_resolvers()  # both no-ops under the CLI, needed in a unit's fresh process
    register_schemas()
    if GlobalHydra.instance().is_initialized():  # inside `vla-razor razor`: same config dir, compose directly
        cfg = compose(config_name="train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="razor_train"):
            cfg = compose(config_name="train", overrides=overrides)
    log.info("training: %s", " ".join(overrides))
    run_training(cfg, pool)


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
            with atomic_path(results / cache.name) as tmp:  # a unit killed mid-copy leaves no cut cache
                shutil.copyfile(cache, tmp)


def unit_results_dir(out_dir: str | Path, name: str) -> Path:
    """Where a unit run elsewhere keeps its episodes (append-only: a unit retried after a lost node
    resumes its evaluation from them)."""
    return Path(out_dir) / "units" / name / "results"
