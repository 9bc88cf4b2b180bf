"""Where a study's units run: here, one after another (``local``), or as independent jobs on an existing
engine: Ray tasks (``ray``) or submitit jobs (``submitit``: SLURM, or processes on this machine).

Each unit is a whole run (train, then evaluate its checkpoints; ``workflows.study_units``) in a fresh
process with its own env pool; the driver hands every result to its caller as the unit finishes, and the
caller records it (the study folder keeps one writer). A run warm-started from another starts once that
one has finished. The engines do their own work: Ray places each task where its declared CPUs and GPUs
are free and runs it again when its worker or node is lost (``max_retries``; the retry resumes the
training from its checkpoints and the evaluation from its stored episodes); submitit writes and submits
the SLURM jobs (or starts local processes) and brings back each result or the job's error.

A unit that fails is reported with its error after every other unit has finished, and the command stops
with one line naming them: finished units are recorded, and the failed ones resume on the next run.
Ray and submitit are optional (``pip install "vla-razor[ray]"`` / ``"vla-razor[slurm]"``), imported only
when asked for.
"""

from __future__ import annotations

import functools
import importlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vla_razor.errors import BadInputError, UserError
from vla_razor.preemption import preemptions_so_far
from vla_razor.ray_connect import connect
from vla_razor.workflows.study_units import UnitResult, UnitSpec, run_unit

log = logging.getLogger(__name__)

BACKENDS = ("local", "ray", "submitit")
SUBMITIT_CLUSTERS = (None, "slurm", "local")
# How often a waiting driver asks submitit whether a job finished (each ask reads the job's files, or
# calls sacct on SLURM, which submitit rate-limits by itself).
SUBMITIT_POLL_S = 2.0


@dataclass(frozen=True)
class SubmititSettings:
    """The jobs submitit submits (``units.backend: submitit``)."""

    # slurm: sbatch jobs; local: processes on this machine (tests, a workstation); null: submitit's guess.
    cluster: str | None = "slurm"
    # Job scripts, pickled units and the jobs' logs; null: out_dir/units/submitit.
    folder: str | None = None
    # SLURM partition; null: the cluster's default.
    partition: str | None = None
    # Wall-time limit of one job (minutes): one run trained and evaluated.
    timeout_min: int = 240
    # Memory per job (GB); null: the cluster's default.
    mem_gb: float | None = None
    # Further sbatch settings, passed as they are (e.g. {account: lab, qos: normal}).
    slurm_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cluster not in SUBMITIT_CLUSTERS:
            raise BadInputError(
                f"units.submitit.cluster={self.cluster!r}; valid: slurm, local (processes on this machine) "
                "or null (submitit's guess)"
            )
        if (
            not isinstance(self.timeout_min, int)
            or isinstance(self.timeout_min, bool)
            or self.timeout_min < 1
        ):
            raise BadInputError(f"units.submitit.timeout_min={self.timeout_min!r} must be a positive integer")
        if self.mem_gb is not None and not (isinstance(self.mem_gb, int | float) and self.mem_gb > 0):
            raise BadInputError(f"units.submitit.mem_gb={self.mem_gb!r} must be a positive number or null")


@dataclass(frozen=True)
class UnitSettings:
    """Where a study's units run, and what each one asks for (the ``units`` block of ``razor``)."""

    # local: in this process, one after another; ray: Ray tasks; submitit: SLURM jobs (or local processes).
    backend: str = "local"
    # ray: the cluster to join ("auto", "HOST:6379", "ray://HOST:10001"); null starts one on this machine.
    address: str | None = None
    # CPUs per unit: its env worker processes (ray, submitit).
    cpus_per_unit: int = 1
    # GPUs per unit (ray, submitit): its policy's device is the config's `device` and `policy.device`.
    gpus_per_unit: int = 0
    # ray: how many times a unit lost with its worker or node runs again (resuming from its checkpoints).
    max_retries: int = 2
    # ray: when the driver is stopped (Ctrl-C, SIGTERM), how long its running units get to stop as Ctrl-C
    # stops them (training: a checkpoint after the update in progress) before they are killed.
    stop_grace_s: float = 300.0
    submitit: SubmititSettings = field(default_factory=SubmititSettings)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BadInputError(
                f"units.backend={self.backend!r}; valid: local (in this process), ray or submitit"
            )
        for name, least in (("cpus_per_unit", 1), ("gpus_per_unit", 0), ("max_retries", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BadInputError(f"units.{name}={value!r} must be an integer >= {least}")
        grace = self.stop_grace_s
        if not isinstance(grace, int | float) or isinstance(grace, bool) or not 0 <= grace < float("inf"):
            raise BadInputError(f"units.stop_grace_s={grace!r} must be a number of seconds >= 0")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> UnitSettings:
        values = dict(values or {})
        _check_keys(values, cls, "units")
        nested = dict(values.pop("submitit", None) or {})
        _check_keys(nested, SubmititSettings, "units.submitit")
        return cls(**values, submitit=SubmititSettings(**nested))


def _check_keys(values: dict[str, Any], settings: type, block: str) -> None:
    valid = [f.name for f in fields(settings)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise BadInputError(f"unknown {block} setting(s) {unknown}; valid: {', '.join(valid)}")


@dataclass(frozen=True)
class PlannedUnit:
    """A unit to run: its spec is built when it is submitted (a warm-started run reads the checkpoint of
    the run it starts from, which exists only once that unit has finished)."""

    name: str
    spec: Callable[[], UnitSpec]
    # The units that must finish first: a warm start, the runs a learning-rate rule reads.
    after: tuple[str, ...] = ()


class UnitsFailed(UserError):
    """Units that failed; every other unit is recorded, and these resume on the next run."""


def run_units(
    planned: Sequence[PlannedUnit],
    settings: UnitSettings,
    on_result: Callable[[UnitResult], None],
    job_folder: Path,
) -> None:
    """Run every planned unit on ``settings.backend`` (ray or submitit), handing each result to
    ``on_result`` in this process as its unit finishes; a unit waits for the ones it names in ``after``."""
    if not planned:
        return
    backend = _RayBackend(settings) if settings.backend == "ray" else _SubmititBackend(settings, job_folder)
    unknown = sorted({name for u in planned for name in u.after} - {u.name for u in planned})
    if unknown:  # the caller leaves out what is already recorded: a name here must be a planned unit
        raise ValueError(f"units wait for {unknown}, which are not planned")
    waiting, running = list(planned), {}
    done: set[str] = set()
    failed: dict[str, str] = {}
    try:
        while waiting or running:
            for unit in [u for u in waiting if set(u.after) <= done | set(failed)]:
                waiting.remove(unit)
                before = [name for name in unit.after if name in failed]
                if before:
                    failed[unit.name] = f"{', '.join(before)}, which it waits for, failed"
                    continue
                try:  # a spec is built at submission (it may read what earlier units recorded)
                    spec = unit.spec()
                except UserError as error:
                    failed[unit.name] = f"{type(error).__name__}: {_first_line(error)}"
                    log.error("unit %s failed: %s", unit.name, failed[unit.name])
                    continue
                running[backend.submit(spec)] = unit.name
            if not running:
                if waiting:  # nothing runs and nothing can start: the units wait for each other
                    raise RuntimeError(f"units wait on each other: {[(u.name, u.after) for u in waiting]}")
                continue
            handle, outcome = backend.next_finished(list(running))
            name = running.pop(handle)
            if isinstance(outcome, UnitResult):
                on_result(outcome)
                done.add(name)
                log.info("unit %s done (%d of %d): %s", outcome.name, len(done), len(planned), _cost(outcome))
            else:
                failed[name] = f"{type(outcome).__name__}: {_first_line(outcome)}"
                log.error("unit %s failed: %s", name, failed[name])
    except KeyboardInterrupt:  # Ctrl-C or a preemption of the driver: the units stop too
        backend.cancel(list(running))
        raise
    finally:
        backend.close()
    if failed:
        raise UnitsFailed(
            f"{len(failed)} unit(s) failed: "
            + "; ".join(f"{name} [{why}]" for name, why in failed.items())
            + " (run the same command again: recorded units are kept, these resume from their checkpoints)"
        )


def _cost(result: UnitResult) -> str:
    compute = result.compute
    train = f"trained {compute['train_s']:.0f} s, " if "train_s" in compute else ""
    return f"{train}evaluated {compute['eval_s']:.0f} s on {compute['machine']}"


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error  # Ray wraps a task's exception; its cause is the story
    lines = [line for line in str(cause).splitlines() if line.strip()]
    # submitit's FailedJobError quotes the job's traceback between two rules of dashes: its last line
    # is the job's error.
    rules = [i for i, line in enumerate(lines) if set(line.strip()) == {"-"}]
    if len(rules) >= 2 and rules[1] > rules[0] + 1:
        return lines[rules[1] - 1][:300]
    return (lines[0] if lines else type(cause).__name__)[:300]


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BadInputError(
            f"units.backend={extra} needs {module}: pip install 'vla-razor[{'ray' if extra == 'ray' else 'slurm'}]' "
            "(or set units.backend=local)"
        ) from None


def _stoppable(task: Callable[[UnitSpec], UnitResult]) -> Callable[[UnitSpec], UnitResult]:
    """``task`` as a Ray task that a stop request reaches in every phase, however the cluster was started.

    Ray asks a task to stop by interrupting its main thread as Ctrl-C would, which Python honours only
    where SIGINT has a Python handler. A process started with SIGINT ignored keeps it ignored, and so do
    the Ray workers of a cluster started from one: ``ray start --head --block &`` in a batch script (a
    shell's background job ignores SIGINT). Such a unit could not be asked; the driver would wait out the
    whole grace, then kill it mid-episode. So the task restores Python's own handler first; the training
    loop's stop handling (``InterruptFlag``) installs its own on top, as everywhere else."""

    @functools.wraps(task)
    def unit(spec: UnitSpec) -> UnitResult:
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return task(spec)

    return unit


class _RayBackend:
    """Units as Ray tasks with their CPUs and GPUs declared; a lost worker or node runs the unit again."""

    def __init__(self, settings: UnitSettings, task: Callable[[UnitSpec], UnitResult] = run_unit) -> None:
        self.ray = _import("ray", "ray")
        self.stop_grace_s = settings.stop_grace_s
        self.started_here = connect(self.ray, settings.address)
        # An error raised by the unit itself (bad input, a failed training) would fail again: not retried.
        self.remote = self.ray.remote(_stoppable(task)).options(
            num_cpus=settings.cpus_per_unit,
            num_gpus=settings.gpus_per_unit,
            max_retries=settings.max_retries,
            retry_exceptions=False,
        )

    def submit(self, spec: UnitSpec) -> Any:
        return self.remote.remote(spec)

    def next_finished(self, handles: list[Any]) -> tuple[Any, UnitResult | BaseException]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        try:
            return ready[0], self.ray.get(ready[0])
        except (self.ray.exceptions.RayError, OSError) as error:
            return ready[0], error

    def cancel(self, handles: list[Any]) -> None:
        # Ask first: Ray raises KeyboardInterrupt in the task's main thread, through its SIGINT handler,
        # as Ctrl-C would, so a training saves a checkpoint after its update in progress and an evaluation
        # keeps its stored episodes. Killing at once would lose the training since its last checkpoint.
        if not handles:
            return
        for ref in handles:
            self.ray.cancel(ref, force=False)
        log.warning(
            "stopping %d unit(s): a training saves its checkpoint first (up to units.stop_grace_s = %.0f s)",
            len(handles),
            self.stop_grace_s,
        )
        deadline, left = time.monotonic() + self.stop_grace_s, list(handles)
        try:
            while left and (remaining := deadline - time.monotonic()) > 0:
                seen = preemptions_so_far()
                try:
                    _, left = self.ray.wait(left, num_returns=len(left), timeout=remaining)
                except KeyboardInterrupt:
                    # A scheduler repeats its signal (SLURM: USR1 ahead of the limit, then TERM): the
                    # checkpoints are coming, keep waiting. A Ctrl-C here means now.
                    if preemptions_so_far() == seen:
                        raise
        finally:
            if left:
                log.warning("killing %d unit(s) that had not stopped", len(left))
            for ref in left:
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()


class _SubmititBackend:
    """Units as submitit jobs: sbatch jobs on SLURM (``cluster: slurm``), or processes on this machine."""

    def __init__(self, settings: UnitSettings, job_folder: Path) -> None:
        self.submitit = _import("submitit", "submitit")
        options = settings.submitit
        self.executor = self.submitit.AutoExecutor(
            folder=options.folder or job_folder, cluster=options.cluster
        )
        parameters: dict[str, Any] = {
            "name": "vla-razor-unit",
            "timeout_min": options.timeout_min,
            "cpus_per_task": settings.cpus_per_unit,
            "gpus_per_node": settings.gpus_per_unit,
            "slurm_additional_parameters": dict(options.slurm_parameters),
        }
        if options.partition is not None:
            parameters["slurm_partition"] = options.partition
        if options.mem_gb is not None:
            parameters["mem_gb"] = options.mem_gb
        self.executor.update_parameters(**parameters)

    def submit(self, spec: UnitSpec) -> Any:
        job = self.executor.submit(run_unit, spec)
        log.info("unit %s: submitit job %s", spec.name, job.job_id)
        return job

    def next_finished(self, handles: list[Any]) -> tuple[Any, UnitResult | BaseException]:
        job = next(self.submitit.helpers.as_completed(handles, poll_frequency=SUBMITIT_POLL_S))
        try:
            return job, job.result()
        except Exception as error:  # the job's own error, or submitit's word that it died
            return job, error

    def cancel(self, handles: list[Any]) -> None:
        for job in handles:
            job.cancel(check=False)

    def close(self) -> None:
        pass
