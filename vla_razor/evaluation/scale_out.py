"""Fan the held-out suite's episodes out over a Ray cluster when one machine is not enough.

The unit of work is one (checkpoint, task, block of seeds): a Ray task that starts its own env pool on
the node it lands on, loads the policy from a path every node can read (a shared filesystem, as on any
SLURM or cloud cluster), plays the block with the same engine as an in-process evaluation, and returns
the episodes. The driver is the only writer: it appends each unit's episodes to the results store as the
unit finishes, so a killed evaluation resumes from the store exactly as an in-process one does, and the
divergences (KL, drift, weight distance) are then computed in the driver from the cached states.

A unit that fails is retried once (Ray's ``max_retries`` for a lost node, ``retry_exceptions`` for an
error); if it fails again, it is reported with its (checkpoint, task, seeds) after every other unit has
finished, and the command stops with a one-line error naming them (their episodes simply re-run on the
next invocation).

Ray is an optional dependency (``pip install "vla-razor[ray]"``), imported only when a run asks for it:
in-process evaluations neither need it nor pay for its import.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from vla_razor.errors import BadInputError, UserError
from vla_razor.evaluation.identity import policy_content_hash, short_hash
from vla_razor.evaluation.success import evaluate_success
from vla_razor.policies import load_policy
from vla_razor.ray_connect import connect
from vla_razor.rollouts import EngineSettings, EnvPool, SeededEpisode
from vla_razor.rollouts.pool import config_task_specs
from vla_razor.rollouts.worker import RobosuiteEnvFactory
from vla_razor.sampling import GREEDY, Sampling

log = logging.getLogger(__name__)

BACKENDS = (None, "ray")


@dataclass(frozen=True)
class ScaleOutSettings:
    """Where the suite's episodes run: in this process's env pool (``backend: null``) or on Ray."""

    # null: in-process (this machine's env pool); "ray": units fanned out over a Ray cluster.
    backend: str | None = None
    # Ray cluster to join ("auto", "HOST:6379", "ray://HOST:10001"); null starts a local one.
    address: str | None = None
    # Seeds per unit: smaller units spread wider and lose less to a failure, larger ones build fewer envs.
    seeds_per_unit: int = 13
    # Env worker processes (and so CPUs reserved) per unit.
    workers_per_unit: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BadInputError(f"scale_out.backend={self.backend!r}; valid: null (in-process) or 'ray'")
        for name in ("seeds_per_unit", "workers_per_unit"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInputError(f"scale_out.{name}={value!r} must be a positive integer")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> ScaleOutSettings:
        values = dict(values or {})
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise BadInputError(f"unknown scale_out setting(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**values)


@dataclass(frozen=True)
class Unit:
    """One independent piece of the suite: a policy's episodes on one task for a block of seeds."""

    policy_id: str
    policy_hash: str
    policy_dir: str
    task: str
    seeds: tuple[int, ...]
    env_kwargs: dict[str, Any]
    sampling: Sampling = GREEDY

    def describe(self) -> str:
        return f"({self.policy_id}, {self.task}, seeds {self.seeds[0]}..{self.seeds[-1]})"


def plan_units(
    policies: Sequence[tuple[str, str, Path]],
    tasks: Sequence[str],
    seeds: Sequence[int],
    env_kwargs: dict[str, Any],
    seeds_per_unit: int,
    done: Callable[[str, str, str], set[int]],
    sampling: Sampling = GREEDY,
) -> list[Unit]:
    """Units for every (policy, task, seed block) with episodes still missing from the store.

    ``policies`` are (id, content hash, folder); ``done(id, hash, task)`` gives the seeds already stored.
    """
    units = []
    for policy_id, policy_hash, policy_dir in policies:
        for task in tasks:
            finished = done(policy_id, policy_hash, task)
            missing = [int(s) for s in seeds if int(s) not in finished]
            for start in range(0, len(missing), seeds_per_unit):
                block = tuple(missing[start : start + seeds_per_unit])
                # Absolute: a unit runs in a Ray worker whose working directory is not the driver's.
                folder = str(Path(policy_dir).resolve())
                units.append(Unit(policy_id, policy_hash, folder, task, block, dict(env_kwargs), sampling))
    return units


def play_unit(
    unit: Unit, workers: int, task_specs: tuple[Any, ...] = (), device: str = "cpu"
) -> list[dict[str, Any]]:
    """Play one unit with a private env pool (what a Ray task runs; also callable in-process).

    ``task_specs`` are the driver's config-defined tasks: a node's fresh process knows only built-in ones.
    """
    found = policy_content_hash(unit.policy_dir)
    if found != unit.policy_hash:  # rewritten since planning: its episodes would be stored under old bytes
        raise PolicyChanged(
            f"{unit.policy_dir} changed after the evaluation was planned ({short_hash(found)} is not "
            f"{short_hash(unit.policy_hash)})"
        )
    policy = load_policy(unit.policy_dir, device=device)
    factory = RobosuiteEnvFactory(task_specs)
    with EnvPool(EngineSettings(num_workers=workers), env_factory=factory) as pool:
        results = evaluate_success(
            policy,
            pool,
            [unit.task],
            unit.env_kwargs,
            list(unit.seeds),
            progress=False,
            sampling=unit.sampling,
        )
    return [asdict(e) for e in results[unit.task].episodes]


class PolicyChanged(RuntimeError):
    """A unit's policy folder no longer holds the bytes the evaluation was planned for."""


class UnitsFailed(UserError):
    """Units that failed twice; their episodes are missing from the store and re-run next time."""


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise BadInputError(
            "scale_out.backend=ray needs Ray: pip install 'vla-razor[ray]' (or set scale_out.backend=null)"
        ) from None


def run_units_on_ray(
    units: Sequence[Unit],
    settings: ScaleOutSettings,
    device: str,
    on_episodes: Callable[[Unit, list[SeededEpisode]], None],
    progress: bool = True,
) -> None:
    """Submit every unit to Ray, hand each one's episodes to ``on_episodes`` as it finishes. Each unit
    loads its policy on ``device`` and runs ``settings.workers_per_unit`` env workers with the engine's
    defaults for that many CPUs (the driver's ``engine`` block describes the driver's machine, not the
    nodes')."""
    ray = _import_ray()
    if not units:
        return
    started_here = connect(ray, settings.address)
    remote = ray.remote(play_unit).options(
        num_cpus=settings.workers_per_unit, max_retries=1, retry_exceptions=True
    )
    specs = config_task_specs()
    pending = {remote.remote(unit, settings.workers_per_unit, specs, device): unit for unit in units}
    failed: list[tuple[Unit, str]] = []
    bar = tqdm(total=len(units), desc="units", unit="unit", disable=not progress, leave=False)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ready[0])
            try:
                rows = ray.get(ready[0])
            except (ray.exceptions.RayError, OSError) as exc:
                failed.append((unit, type(exc).__name__))
                log.error("unit %s failed twice: %s", unit.describe(), str(exc).splitlines()[0][:300])
            else:
                on_episodes(unit, [SeededEpisode(**row) for row in rows])
            bar.update(1)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bar.close()
        if started_here:
            ray.shutdown()
    if failed:
        raise UnitsFailed(
            f"{len(failed)} unit(s) failed twice and were left out: "
            + "; ".join(f"{u.describe()} [{why}]" for u, why in failed)
            + " (run the command again: finished episodes are kept, only these re-run)"
        )
