"""A study's units on an existing engine, for real: submitit's local executor (jobs as processes on this
machine) and a two-node Ray cluster on this machine give the same units as the in-process study.

Every study here is toy-sized (one task besides the new one, one episode per task, two updates of six
steps). The units are compared whole, episodes, hashes of the trained weights and metrics included,
except what a unit cost (``compute``: its wall times). They are equal, not merely close: a unit's
process trains from the same seeds, on one torch thread, with the same number of env workers as the
in-process study (``units.cpus_per_unit`` = ``engine.num_workers`` = 1). That number matters: training
rollouts are batched by how the envs split over the workers (``rollouts.splits.split_envs``: 2 envs on
one worker decode as two batches of one, on two workers as one batch of two), and a batch of one samples
and rounds otherwise than a batch of two, so runs with different worker counts differ, in-process too.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from ray.cluster_utils import Cluster

from vla_razor.config import config_dir, register_resolvers
from vla_razor.errors import BadInputError
from vla_razor.evaluation.lr_choice import learning_rate_scores
from vla_razor.evaluation.study import study_document
from vla_razor.folder_lock import OWNER_NAME
from vla_razor.rollouts import EngineSettings
from vla_razor.schemas import register_schemas
from vla_razor.workflows.study import StudyConfig, run_study
from vla_razor.workflows.unit_dispatch import UnitSettings

TOY = [
    "suite.prior_tasks=[lift]",
    "suite.episodes=1",
    "suite.kl_states=4",
    "suite.kl_state_seeds=1",
    "videos=0",
    "out_dir=runs/razor",
    "study_dir=study",
    "sft_demos.episodes=2",
]
PPO = [
    "trainer.num_iterations=2",
    "trainer.num_steps=6",
    "trainer.minibatch_size=6",
    "trainer.save_every=1",
    "task.env.horizon=6",
    "logging.tensorboard=false",
]
BC = [
    "trainer.num_iterations=2",
    "trainer.save_every=1",
    "trainer.minibatch_size=4",
    "trainer.warmup_steps=1",
]
# A BC run long enough to be stopped mid-training, with its checkpoints far apart (steps 200 and 400).
BC_LONG = [
    "trainer.num_iterations=400",
    "trainer.save_every=200",
    "trainer.minibatch_size=4",
    "trainer.warmup_steps=1",
    "logging.tensorboard=false",
]
SWEEPS = {
    "ppo": [("ppo", PPO)],
    "ppo+bc": [("ppo", PPO), ("bc", [*BC, "logging.tensorboard=false"])],
    "bc_long": [("bc", BC_LONG)],
}
RUN_NAMES = {"ppo": "ppo_lr1e-05_seed0", "bc": "bc_lr1e-05_seed0"}


def study_config(sweep: str, *overrides: str) -> StudyConfig:
    """The razor config at toy size, composed as `vla-razor razor` composes it (relative paths: the cwd)."""
    entries = ", ".join(
        f"{{trainer: {trainer}, lr: 1.0e-5, seed: 0, overrides: [{', '.join(repr(o) for o in run)}]}}"
        for trainer, run in SWEEPS[sweep]
    )
    register_resolvers()
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="units_test"):
        cfg = compose(config_name="razor", overrides=[*TOY, f"sweep=[{entries}]", *overrides])
    return StudyConfig.from_cfg(cfg)


def run_in(cwd: Path, sweep: str, *overrides: str) -> dict[str, Any]:
    with contextlib.chdir(cwd):
        # The driver's engine as a unit's (one worker, one torch and render thread; see the docstring).
        engine = EngineSettings(num_workers=1, torch_threads=1, render_threads=1)
        return run_study(study_config(sweep, *overrides), engine)


def seed_pi0(reference: Path, cwd: Path) -> None:
    """Give a new study the reference study's recorded pi0 and KL states, as a study resumed on another
    machine has them: its driver then plays no pi0 episode, and only the units differ in how they ran."""
    (cwd / "study").mkdir(parents=True)
    shutil.copyfile(reference / "study" / "pi0.json", cwd / "study" / "pi0.json")
    shutil.copytree(reference / "study" / "states", cwd / "study" / "states")


def recorded_units(cwd: Path) -> dict[str, str]:
    """Each recorded run's unit without its wall times, as JSON (NaN standard errors compare equal)."""
    units = {}
    for path in sorted((cwd / "study" / "runs").glob("*.json")):
        unit = json.loads(path.read_text())
        compute = unit.pop("compute")
        assert compute["eval_s"] > 0 and compute["machine"].endswith("usable cores")
        assert compute["span_utc"][0] <= compute["span_utc"][1]  # where the unit ran, it recorded its span
        units[path.stem] = json.dumps(unit, sort_keys=True)
    return units


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory):
    """The in-process study of each sweep (run once per module): the units every backend must give."""
    done: dict[str, Path] = {}

    def get(sweep: str) -> Path:
        if sweep not in done:
            cwd = tmp_path_factory.mktemp(f"in-process-{sweep}")
            run_in(cwd, sweep)
            done[sweep] = cwd
        return done[sweep]

    return get


def assert_same_units(reference: Path, cwd: Path, sweep: str) -> None:
    names = sorted(RUN_NAMES[trainer] for trainer, _ in SWEEPS[sweep])
    expected, got = recorded_units(reference), recorded_units(cwd)
    assert sorted(expected) == names and sorted(got) == names
    for name in names:
        assert got[name] == expected[name], name
        # Each unit played its episodes in its own process, into a results folder of its own.
        assert (cwd / "runs" / "razor" / "units" / name / "results" / "episodes.jsonl").is_file()
    # The driver's results folder holds pi0 alone: no unit ran in the driver.
    assert not (cwd / "runs" / "razor" / "results" / "episodes.jsonl").exists()


@pytest.mark.parametrize(
    "sweep",
    # One PPO unit (a job started the way SLURM starts one, through submitit; about 70 s with the
    # in-process reference), and PPO and BC side by side (two jobs at once, SFT demos shared): both with
    # the slow tests, beside the Ray ones. The default run's unit tests are tests/cli/test_cli.py's razor
    # test (units in process) and tests/workflows/test_ray_unit_stop.py (the Ray backend's stop).
    [pytest.param("ppo", marks=pytest.mark.slow), pytest.param("ppo+bc", marks=pytest.mark.slow)],
)
def test_submitit_units_equal_the_in_process_study(in_process, tmp_path, sweep: str) -> None:
    reference = in_process(sweep)
    seed_pi0(reference, tmp_path)
    run_in(tmp_path, sweep, "units.backend=submitit", "units.submitit.cluster=local")
    assert_same_units(reference, tmp_path, sweep)
    # submitit kept each job's log beside its pickled unit and result.
    logs = list((tmp_path / "runs" / "razor" / "units" / "submitit").glob("*_log.out"))
    assert len(logs) == len(SWEEPS[sweep])


@pytest.fixture
def two_nodes(ray_machine: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A Ray cluster of two nodes on this machine, one CPU each (one unit each), and a head node that
    runs none: Ray's own multi-node test cluster, each node a raylet of its own."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


def on_ray(cluster: Cluster) -> list[str]:
    return ["units.backend=ray", f"units.address='{cluster.address}'"]


@pytest.mark.slow
def test_ray_units_on_two_nodes_equal_the_in_process_study(in_process, two_nodes, tmp_path) -> None:
    reference = in_process("ppo+bc")
    seed_pi0(reference, tmp_path)
    run_in(tmp_path, "ppo+bc", *on_ray(two_nodes))
    assert_same_units(reference, tmp_path, "ppo+bc")


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return chain


def _node_running(cluster: Cluster, pid: int) -> Any:
    """The worker node whose raylet started the process ``pid`` (a Ray worker is its raylet's child)."""
    ancestors = set(_ancestors(pid))
    for node in cluster.worker_nodes:
        if any(info.process.pid in ancestors for info in node.all_processes["raylet"]):
            return node
    raise AssertionError(f"process {pid} runs on no worker node of the cluster")


def _wait_for_the_first_checkpoint(run_dir: Path) -> None:
    deadline = time.monotonic() + 600
    while not (run_dir / "checkpoints" / "step_000001").is_dir():
        assert time.monotonic() < deadline, f"{run_dir.name} saved no first checkpoint in 600 s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["worker", "node"])
def test_a_unit_lost_with_its_ray_worker_or_node_runs_again_and_resumes(
    in_process, two_nodes, tmp_path, victim: str
) -> None:
    """SIGKILL of the Ray worker training a unit (what the OOM killer does), or the loss of its whole node
    (every process of that raylet killed): Ray runs the unit again, on the node left, and it resumes its
    training from the checkpoint the lost one saved. The recorded unit is the uninterrupted one."""
    reference = in_process("ppo")
    seed_pi0(reference, tmp_path)
    run_dir = tmp_path / "runs" / "razor" / "train" / RUN_NAMES["ppo"]
    killed: list[int] = []

    def kill_after_the_first_checkpoint() -> None:
        _wait_for_the_first_checkpoint(run_dir)
        pid = int(json.loads((run_dir / OWNER_NAME).read_text())["pid"])  # the training's process
        if victim == "worker":
            os.kill(pid, signal.SIGKILL)
        else:
            two_nodes.remove_node(_node_running(two_nodes, pid), allow_graceful=False)
        killed.append(pid)

    killer = threading.Thread(target=kill_after_the_first_checkpoint, daemon=True)
    killer.start()
    run_in(tmp_path, "ppo", *on_ray(two_nodes))
    killer.join(timeout=5)
    assert killed, "the unit finished before it could be killed"
    assert_same_units(reference, tmp_path, "ppo")
    unit = json.loads((tmp_path / "study" / "runs" / f"{RUN_NAMES['ppo']}.json").read_text())
    assert unit["compute"]["train_resumed"] is True  # the second run resumed from the first one's checkpoint


@pytest.mark.slow
def test_a_stopped_driver_lets_its_ray_units_checkpoint_then_resumes(in_process, two_nodes, tmp_path) -> None:
    """Ctrl-C (or a scheduler's SIGTERM) of the driver while a unit trains on Ray: the unit is asked to stop
    as Ctrl-C asks and saves a checkpoint after the step in progress, off its schedule (a kill would leave
    none before step 200); the same command then resumes from it and records the unit the uninterrupted
    study records."""
    reference = in_process("bc_long")
    seed_pi0(reference, tmp_path)
    run_dir = tmp_path / "runs" / "razor" / "train" / RUN_NAMES["bc"]
    interrupted: list[bool] = []

    def interrupt_mid_training() -> None:
        metrics, deadline = run_dir / "metrics.jsonl", time.monotonic() + 600
        while time.monotonic() < deadline:
            steps = [json.loads(line).get("step", 0) for line in _lines(metrics)]
            if steps and max(steps) >= 40:
                break
            time.sleep(0.05)
        _thread.interrupt_main()  # the driver's Ctrl-C, delivered while it waits on Ray
        interrupted.append(True)

    interrupter = threading.Thread(target=interrupt_mid_training, daemon=True)
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        run_in(tmp_path, "bc_long", *on_ray(two_nodes))
    interrupter.join(timeout=5)
    assert interrupted and not (tmp_path / "study" / "runs" / f"{RUN_NAMES['bc']}.json").exists()
    saved = sorted(int(p.name.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*"))
    assert saved and 40 <= saved[-1] < 200, f"no checkpoint saved on the stop: {saved}"
    run_in(tmp_path, "bc_long", *on_ray(two_nodes))
    assert_same_units(reference, tmp_path, "bc_long")
    unit = json.loads((tmp_path / "study" / "runs" / f"{RUN_NAMES['bc']}.json").read_text())
    assert unit["compute"]["train_resumed"] is True


def _lines(path: Path) -> list[str]:
    """The complete lines of a file another process appends to (none while it does not exist)."""
    if not path.is_file():
        return []
    text = path.read_text()
    return text.splitlines()[: text.count("\n")]


def test_unit_settings_are_checked_in_one_line() -> None:
    with pytest.raises(
        BadInputError, match=r"units.backend='slurm'; valid: local \(in this process\), ray or submitit"
    ):
        UnitSettings(backend="slurm")
    with pytest.raises(
        BadInputError, match=r"unknown units setting\(s\) \['nodes'\]; valid: backend, address"
    ):
        UnitSettings.from_mapping({"nodes": 2})
    with pytest.raises(BadInputError, match=r"unknown units.submitit setting\(s\) \['account'\]"):
        UnitSettings.from_mapping({"submitit": {"account": "lab"}})
    with pytest.raises(BadInputError, match=r"units.cpus_per_unit=0 must be an integer >= 1"):
        UnitSettings(cpus_per_unit=0)
    with pytest.raises(BadInputError, match=r"units.submitit.cluster='pbs'; valid: slurm, local"):
        UnitSettings.from_mapping({"submitit": {"cluster": "pbs"}})
    with pytest.raises(BadInputError, match=r"units.backend=ray with scale_out.backend=ray"):
        study_config("ppo", "units.backend=ray", "scale_out.backend=ray")


DAGGER = [
    "trainer.num_iterations=1",
    "trainer.num_steps=6",
    "trainer.updates_per_iteration=1",
    "trainer.minibatch_size=4",
    "trainer.save_every=1",
    "task.env.horizon=6",
    "logging.tensorboard=false",
]


@pytest.mark.slow  # three toy units (about 30 s); the rule's parts are in the default run (test_lr_rule.py)
def test_a_learning_rate_rule_trains_at_the_rate_the_recorded_units_pick(tmp_path: Path) -> None:
    """Study 2's DAgger entry at toy size: two BC rates are trained and recorded first, then the rule reads
    them and DAgger trains (and is recorded) under the picked rate's name, with that rate."""
    bc = ", ".join(repr(o) for o in [*BC, "logging.tensorboard=false"])
    dagger = ", ".join(repr(o) for o in DAGGER)
    sweep = (
        f"sweep=[{{trainer: bc, lr: 1.0e-5, seed: 0, overrides: [{bc}]}}, "
        f"{{trainer: bc, lr: 3.0e-5, seed: 0, overrides: [{bc}]}}, "
        f"{{trainer: dagger, lr: {{best_of: bc}}, seed: 0, overrides: [{dagger}]}}]"
    )
    register_resolvers()
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="units_test"):
        cfg = compose(config_name="razor", overrides=[*TOY, sweep])
    with contextlib.chdir(tmp_path):
        run_study(StudyConfig.from_cfg(cfg), EngineSettings(num_workers=1, torch_threads=1, render_threads=1))
    document = study_document(tmp_path / "study")
    best = learning_rate_scores(document, "bc")[0]
    runs = sorted(p.stem for p in (tmp_path / "study" / "runs").glob("*.json"))
    assert runs == sorted(["bc_lr1e-05_seed0", "bc_lr3e-05_seed0", f"dagger_lr{best.lr:g}_seed0"])
    dagger_lrs = {rec["lr"] for pid, rec in document["policies"].items() if pid.startswith("dagger")}
    assert dagger_lrs == {best.lr}
