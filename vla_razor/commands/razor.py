"""``vla-razor razor``: train a sweep of fine-tuning runs from pi0, evaluate every checkpoint on the
held-out suite, and write the study report (Pareto plot, predictors table, matched success, report.md).

The study is a sequence of independent units, one per sweep entry: train (resuming a killed run), evaluate
its checkpoints, and record them in ``study_dir/runs/<run>.json``, small enough to commit at once. pi0 is
evaluated first, so its new-task success is on record (and in the log) before any training compute is
spent. A study killed at any point loses at most the unit in progress, even on a machine without
``runs/``: ``--from-results study_dir`` rebuilds the report from the recorded units.
"""

from __future__ import annotations

import logging
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from vla_razor.checkpoints import (
    expand_checkpoints,
    latest_checkpoint,
    list_checkpoints,
    resolve_policy_dir,
)
from vla_razor.commands import train
from vla_razor.commands.common import engine_settings
from vla_razor.commands.pretrain import ensure_demos
from vla_razor.config import config_dir
from vla_razor.errors import BadInputError, MissingFileError
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
from vla_razor.io_utils import atomic_path
from vla_razor.machine import describe_machine
from vla_razor.policies import load_policy
from vla_razor.rollouts import EnvPool, policy_env_kwargs
from vla_razor.schemas import register_schemas
from vla_razor.stopwatch import AwakeStopwatch
from vla_razor.trainers.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def run_name(entry: dict[str, Any]) -> str:
    """The run folder (and study unit) name of a sweep entry: trainer, lr, seed (and its warm start)."""
    name = "_".join(f"{k}{entry[k]}" for k in ("lr", "seed") if k in entry)
    base = f"{entry['trainer']}_{name}" if name else str(entry["trainer"])
    return f"{base}_from-{entry['warm_start']}" if entry.get("warm_start") else base


def warm_start_policy(train_dir: Path, name: str) -> Path:
    """The last checkpoint of an earlier run of the sweep, the starting point of a warm-started run."""
    last = latest_checkpoint(train_dir / name)
    if last is None:
        raise MissingFileError(
            f"warm start {name!r} has no checkpoint in {str(train_dir / name)!r} (recorded on another machine?); "
            f"remove its unit from the study's runs/ to train it again here"
        )
    return last / "policy"


def train_overrides(
    entry: dict[str, Any], suite: SuiteSpec, pi0: str, train_dir: Path, demos: Path, extra: list[str]
) -> tuple[str, list[str]]:
    trainer = str(entry["trainer"])
    run_dir = train_dir / run_name(entry)
    # A warm-started run (e.g. PPO after a short BC, as RL4VLA does) starts from that run's last checkpoint;
    # the suite still measures its KL and forgetting against pi0, so the warm-up's cost is part of them.
    start = warm_start_policy(train_dir, str(entry["warm_start"])) if entry.get("warm_start") else pi0
    overrides = [
        f"trainer={trainer}",
        f"task={suite.new_task}",
        f"policy.pretrained={start}",
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
    study_dir = Path(cfg.study_dir) if cfg.study_dir else out_dir / "study"
    # One env pool for the whole study: demos, in-training evaluation and the suite reuse its envs.
    with EnvPool(engine_settings(cfg)) as pool:
        _study(cfg, suite, out_dir, study_dir, pool)
    document = study_document(study_dir)
    table = results_table(document)
    print(table)
    report = write_report(document, out_dir / "results", table)
    print(f"report: {report}\nrecorded study (commit it; --from-results rebuilds the report): {study_dir}")
    return document


def _study(cfg: DictConfig, suite: SuiteSpec, out_dir: Path, study_dir: Path, pool: EnvPool) -> None:
    entries = [OmegaConf.to_container(e, resolve=True) for e in cfg.sweep]
    check_entries(entries, [str(r) for r in cfg.runs])
    if not entries and not cfg.runs:
        raise BadInputError(
            "nothing to study: give a `sweep` to train or `runs=[DIR,...]` of finished training runs"
        )
    results = out_dir / "results"
    evaluate = partial(run_suite, EvalConfig.from_cfg(cfg, out_dir=results), pool=pool)
    # A study resumed on another machine (no runs/) carries on from what it recorded: pi0's episodes and the
    # cached states are not played again (another CPU could round a greedy action differently).
    restore_from_study(study_dir, results, suite, policy_content_hash(resolve_policy_dir(cfg.pi0)))
    # pi0 first: its new-task success decides whether on-policy RL has any signal to work with.
    document = evaluate(checkpoints=[])
    write_study_unit(study_dir, "pi0", document, ["pi0"])
    keep_states(results, study_dir)
    _report_pi0(document, suite, entries)
    for run_dir in cfg.runs:  # already-trained runs (e.g. a `vla-razor train -m` sweep)
        compute = {"machine": describe_machine()}
        _record_run(evaluate, study_dir, Path(run_dir).name, str(run_dir), bool(cfg.all_checkpoints), compute)
    demos = _sft_demos(cfg, suite, pool) if any(e["trainer"] in SFT_TRAINERS for e in entries) else None
    for entry in entries:
        name = run_name(entry)
        if study_unit_exists(study_dir, name, document["pi0"]["hash"]):
            log.info("run %s is already recorded in %s", name, study_dir)
            continue
        run_dir, overrides = train_overrides(
            entry,
            suite,
            str(cfg.pi0),
            out_dir / "train",
            demos or Path("no_demos.hdf5"),
            [str(o) for o in cfg.train_overrides],
        )
        # What the unit cost, in this process: a resumed run counts only the training after its resume.
        compute: dict[str, Any] = {"machine": describe_machine()}
        if not _finished(run_dir):
            resumed = bool(list_checkpoints(run_dir))
            if resumed:
                overrides.append("resume=true")
            with AwakeStopwatch() as watch:  # a study paused with SIGSTOP does not count the pause
                _train(overrides, pool)
            compute.update(train_s=round(watch.seconds, 1), train_resumed=resumed)
        _record_run(evaluate, study_dir, name, run_dir, bool(cfg.all_checkpoints), compute)


SFT_TRAINERS = ("bc", "bc_kl")
STATES_DIR = "states"  # the study's cached KL states (pi0's own rollouts), kept beside its units
SWEEP_KEYS = ("trainer", "lr", "seed", "overrides", "warm_start")
TRAINERS = ("bc", "bc_kl", "ppo", "rft")


def check_entries(entries: list[dict[str, Any]], runs: list[str]) -> None:
    """Every entry valid, and every run (sweep or given) a distinct unit: two entries that map to one run
    folder would overwrite each other's checkpoints and record."""
    for entry in entries:
        _check_entry(entry)
    names = [Path(str(r)).name for r in runs]
    for i, entry in enumerate(entries):
        earlier = [run_name(e) for e in entries[:i]]
        if entry.get("warm_start") and entry["warm_start"] not in earlier:
            raise BadInputError(
                f"sweep entry {entry} warm-starts from {entry['warm_start']!r}, which is not an earlier entry; "
                f"earlier runs: {', '.join(earlier) or 'none'}"
            )
    names += [run_name(e) for e in entries]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise BadInputError(
            f"sweep entries (or runs) {clashes} map to the same run folder; give them different lr or seed"
        )


def _check_entry(entry: dict[str, Any]) -> None:
    unknown = sorted(set(entry) - set(SWEEP_KEYS))
    if unknown:
        raise BadInputError(
            f"sweep entry {entry} has unknown key(s) {unknown}; valid: {', '.join(SWEEP_KEYS)}"
        )
    if entry.get("trainer") not in TRAINERS:
        raise BadInputError(
            f"sweep entry {entry} names trainer {entry.get('trainer')!r}; valid: {', '.join(TRAINERS)}"
        )


def restore_from_study(study_dir: Path, results: Path, suite: SuiteSpec, pi0_hash: str) -> None:
    """Seed an empty results folder with the study's recorded pi0 and its cached KL states."""
    if not study_unit_exists(study_dir, "pi0", pi0_hash):
        return
    store = ResultsStore(results, suite, pi0_hash)
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


def scheduled_checkpoints(run_dir: str | Path, all_checkpoints: bool = True) -> list[tuple[str, Path]]:
    """The run's checkpoints on its save schedule: every ``save_every`` steps, and the last.

    A checkpoint written because the run was interrupted (Ctrl-C, a session that ended) is a resume
    point, not a point of the committed sweep design: recorded, it would give its run an extra point in
    every fit and frontier, and make the study depend on when it happened to be stopped.
    """
    checkpoints = expand_checkpoints([str(run_dir)], all_checkpoints)
    latest = latest_checkpoint(run_dir)
    assert latest is not None  # expand_checkpoints refused a run without checkpoints
    # The resolved config, not trainer_state.pt: that one also holds the optimizer state (GBs for a 7B model).
    trainer = OmegaConf.load(latest / "config.yaml").get("trainer") or {}
    every, total = trainer.get("save_every"), trainer.get("num_iterations")
    if total is None:  # checkpoints written before the trainers shared one budget name
        return checkpoints

    def on_schedule(step: int) -> bool:
        return step == total or (bool(every) and step % every == 0)

    kept = []
    for pid, path in checkpoints:
        if on_schedule(int(pid.rsplit("step_", 1)[1])):
            kept.append((pid, path))
        else:
            log.info("%s was saved on an interruption, off the run's save schedule: not in the study", pid)
    return kept


def _record_run(
    evaluate: Any, study_dir: Path, name: str, run_dir: str, all_checkpoints: bool, compute: dict[str, Any]
) -> None:
    """Evaluate a run's scheduled checkpoints and record the unit, with its wall time (``eval_s`` counts
    the episodes this process played; stored ones from an interrupted evaluation are reused, not timed)."""
    checkpoints = scheduled_checkpoints(run_dir, all_checkpoints)
    with AwakeStopwatch() as watch:
        document = evaluate(checkpoints=checkpoints)
    compute = {**compute, "eval_s": round(watch.seconds, 1)}
    path = write_study_unit(study_dir, name, document, [pid for pid, _ in checkpoints], compute)
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


def _finished(run_dir: str | Path) -> bool:
    if not list_checkpoints(run_dir):
        return False
    ckpt = load_checkpoint(run_dir)
    settings = ckpt.trainer_state.get("settings", {})
    done = ckpt.trainer_state.get("update", ckpt.trainer_state.get("step"))
    total = settings.get("num_iterations")
    if total is None:  # checkpoints written before the trainers shared one budget name
        total = settings.get("max_steps") or settings.get("total_updates") or settings.get("iterations")
    return total is not None and done >= total


def _train(overrides: list[str], pool: EnvPool) -> None:
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
    pi0 = load_policy(resolve_policy_dir(cfg.pi0), finetune="frozen")
    # The count is part of the name: BC trains on every demo in the file, so a study asking for 300 must not
    # pick up a quickstart's 30, nor the reverse.
    path = Path("data/demos") / f"{suite.new_task}_sft{int(cfg.sft_demos.episodes)}.hdf5"
    return ensure_demos(
        suite.new_task,
        int(cfg.sft_demos.episodes),
        path,
        policy_env_kwargs(pi0),
        float(cfg.sft_demos.noise_std),
        pool,
        seed=50_000,
    )
