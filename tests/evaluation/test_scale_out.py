"""Scale-out on Ray, for real: a cluster on the loopback interface, the suite's units fanned out over it,
and results equal to the in-process run's."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.evaluation.test_suite import SUITE
from tests.trainers.conftest import tiny_policy_cfg
from vla_razor.errors import BadInputError
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.scale_out import ScaleOutSettings, Unit, UnitsFailed, plan_units, run_units_on_ray
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.policies import build_policy

RAY = Path(sys.executable).parent / "ray"
WORDS = ["lift", "the", "red", "cube", "grasp", "and", "can"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_own_cluster(temp: Path, address: str) -> None:
    """Stop this cluster's processes only. `ray stop --force` would stop every Ray process of the machine,
    a user's running study included. The cluster's services name its temp dir (or, the client server, its
    address) on their command line; its workers, renamed ``ray::...``, are the raylet's children."""
    marks = (str(temp), f"={address}")
    own = [
        proc
        for proc in psutil.process_iter(["cmdline"])
        if any(mark in " ".join(proc.info["cmdline"] or ()) for mark in marks)
    ]
    family = {proc.pid: proc for proc in own}
    for proc in own:
        with contextlib.suppress(psutil.NoSuchProcess):
            family.update({child.pid: child for child in proc.children(recursive=True)})
    for proc in family.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(list(family.values()), timeout=15)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


@pytest.fixture(scope="module")
def cluster(ray_machine: None, tmp_path_factory: pytest.TempPathFactory):
    """A one-node Ray cluster started the way a multi-machine one is (``ray start --head``), on 127.0.0.1."""
    port, client_port = _free_port(), _free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [
        str(RAY), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
        f"--ray-client-server-port={client_port}",  # not the default 10001, which a running cluster holds
    ]  # fmt: skip
    out = subprocess.run(start, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    address = f"127.0.0.1:{port}"
    try:
        yield address
    finally:
        _stop_own_cluster(temp, address)


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("policies")
    build_policy(tiny_policy_cfg(extra_words=WORDS, seed=1)).save_pretrained(root / "pi0")
    build_policy(tiny_policy_cfg(extra_words=WORDS, seed=2)).save_pretrained(root / "ckpt")
    return root / "pi0", root / "ckpt"


def _episodes(out: Path) -> dict[tuple[str, str, int], tuple[bool, int]]:
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    return {(r["policy"], r["task"], r["seed"]): (r["success"], r["length"]) for r in rows}


@pytest.mark.parametrize(
    "with_checkpoint",
    # pi0 alone is 2 Ray units (one per task), 80-130 s on a 2-core machine (each Ray worker imports torch
    # and the simulator, then builds its env pool); with a checkpoint, 4 units and KL between the two
    # policies. Both run with the slow tests: the default run keeps this module's retry test on the same
    # cluster, and tests/workflows/test_ray_unit_stop.py runs Ray tasks through the study's Ray backend.
    [pytest.param(False, marks=pytest.mark.slow), pytest.param(True, marks=pytest.mark.slow)],
    ids=["pi0", "pi0+checkpoint"],
)
def test_ray_run_equals_the_in_process_run(cluster, policies, tmp_path, with_checkpoint: bool) -> None:
    pi0, ckpt = policies
    checkpoints = [("ckpt", ckpt)] if with_checkpoint else []
    suite = SuiteSpec(**SUITE)  # 2 seeds per task
    local = run_suite(EvalConfig(pi0, suite, tmp_path / "local", progress=False), checkpoints)
    settings = ScaleOutSettings(backend="ray", address=cluster, seeds_per_unit=2)
    remote = run_suite(
        EvalConfig(pi0, suite, tmp_path / "ray", progress=False, scale_out=settings), checkpoints
    )
    episodes = _episodes(tmp_path / "local")
    assert len(episodes) == 2 * 2 * (1 + len(checkpoints)) and _episodes(tmp_path / "ray") == episodes
    for pid in ("pi0", *(name for name, _ in checkpoints)):
        for key in ("tasks", "divergence", "forgetting"):  # JSON: NaN standard errors compare equal
            assert json.dumps(remote["policies"][pid][key]) == json.dumps(local["policies"][pid][key])


def test_failing_unit_is_retried_then_reported_with_its_work(cluster, tmp_path) -> None:
    bad = Unit("broken", "sha256:0", str(tmp_path / "gone"), "lift", (100_000, 100_001), {"task": "lift"})
    got = []
    settings = ScaleOutSettings(backend="ray", address=cluster)
    with pytest.raises(
        UnitsFailed, match=r"1 unit\(s\) failed twice.*\(broken, lift, seeds 100000..100001\)"
    ):
        run_units_on_ray([bad], settings, "cpu", lambda unit, episodes: got.append(unit), progress=False)
    assert got == []


def test_units_cover_only_missing_episodes_and_bad_settings_are_one_line(tmp_path) -> None:
    done = {("a", "lift"): {1, 2}}
    units = plan_units(
        [("a", "h", tmp_path)],
        ["lift", "door"],
        [1, 2, 3, 4, 5],
        {},
        2,
        lambda p, h, t: done.get((p, t), set()),
    )
    assert [(u.task, u.seeds) for u in units] == [
        ("lift", (3, 4)),
        ("lift", (5,)),
        ("door", (1, 2)),
        ("door", (3, 4)),
        ("door", (5,)),
    ]
    with pytest.raises(BadInputError, match="scale_out.backend='slurm'; valid: null"):
        ScaleOutSettings(backend="slurm")
    with pytest.raises(BadInputError, match="unknown scale_out setting"):
        ScaleOutSettings.from_mapping({"nodes": 4})
