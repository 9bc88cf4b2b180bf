"""A full disk under the results folder, for real: a small tmpfs mounted for the test (root only), filled
up in the middle of an evaluation. The evaluation stops with the disk's error, every file it leaves is
whole (the episode log at most with a cut last line, which readers skip), and once there is space again
the same evaluation resumes to the episodes of an uninterrupted one. Through the CLI, a full disk is one
line that says what to do."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import cli
from tests.evaluation.test_suite import SUITE, other_dir, pi0_dir  # noqa: F401 (fixtures)
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.suite_spec import SuiteSpec

pytestmark = [
    pytest.mark.slow,  # two evaluations and a CLI run: about a minute on 2 cores
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """Take every free block of ``disk`` with one file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: the write that finds the disk full raises
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _episodes(results: Path) -> dict[tuple[str, str, int], tuple[bool, int]]:
    rows = []
    for line in (results / "episodes.jsonl").read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by the full disk: skipped, as the store skips it
            continue
    return {(r["policy"], r["task"], r["seed"]): (r["success"], r["length"]) for r in rows}


def test_a_disk_filled_mid_evaluation_stops_it_cleanly_and_it_resumes(
    small_disk,
    pi0_dir,  # noqa: F811
    other_dir,  # noqa: F811
    tmp_path,
) -> None:
    suite = SuiteSpec(**SUITE)
    checkpoints = [("ckpt", other_dir)]
    reference = run_suite(EvalConfig(pi0_dir, suite, tmp_path / "reference", progress=False), checkpoints)
    results = small_disk / "results"
    episodes = results / "episodes.jsonl"
    filled: list[Path] = []

    def fill_once_the_checkpoint_plays() -> None:
        while not (episodes.is_file() and "ckpt" in episodes.read_text()):
            time.sleep(0.02)
        filled.append(fill(small_disk))

    filler = threading.Thread(target=fill_once_the_checkpoint_plays, daemon=True)
    filler.start()
    config = EvalConfig(pi0_dir, suite, results, progress=False)
    with pytest.raises(OSError) as stopped:
        run_suite(config, checkpoints)
    filler.join(timeout=5)
    assert stopped.value.errno == errno.ENOSPC and filled
    assert str(results) in str(stopped.value.filename)  # the error names the file it could not write
    # Nothing half-written: no temporary file of an atomic write is left, every JSON file parses, and
    # the append-only logs hold whole lines but for at most a cut last one.
    assert not list(results.glob(".*.tmp*"))
    for path in results.glob("*.json"):
        json.loads(path.read_text())
    for log in ("episodes.jsonl", "policies.jsonl"):
        if (results / log).is_file():
            lines = (results / log).read_text().splitlines()
            for line in lines[:-1]:
                json.loads(line)
    stored = _episodes(results)
    assert any(policy == "ckpt" for policy, _, _ in stored)
    # Space again: the same evaluation resumes from what was stored and ends where an uninterrupted one does.
    filled[0].unlink()
    resumed = run_suite(config, checkpoints)
    assert _episodes(results) == _episodes(tmp_path / "reference")
    for pid in ("pi0", "ckpt"):
        for key in ("tasks", "divergence", "forgetting"):
            assert json.dumps(resumed["policies"][pid][key]) == json.dumps(reference["policies"][pid][key])


def test_a_full_disk_is_one_line_through_the_cli(small_disk, pi0_dir, tmp_path) -> None:  # noqa: F811
    fill(small_disk)
    out = cli(
        "eval",
        f"pi0={pi0_dir}",
        "suite.prior_tasks=[lift]",
        "suite.episodes=1",
        f"out_dir={small_disk}/results",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the disk is full writing '") and "No space left on device" in last
    assert "run the same command again" in last and "Traceback" not in out.stderr
