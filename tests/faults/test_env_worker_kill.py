"""SIGKILL of an env worker in the middle of a suite evaluation (what the OOM killer does): the pool
replaces the worker, the episodes it was playing are played again from their seeds, the evaluation
finishes with exactly the results of an uninterrupted one, and every episode recorded before the kill
stays as it was."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from tests.evaluation.test_suite import SUITE, other_dir, pi0_dir  # noqa: F401 (fixtures)
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.rollouts import EngineSettings, EnvPool


@pytest.mark.slow  # a suite of two policies on a pool of two workers: about 40 s on 2 cores (the engine's
# own kill test, tests/rollouts/test_engine_robosuite.py, is the fast one)
def test_sigkill_of_an_env_worker_mid_evaluation_changes_no_result(pi0_dir, other_dir, tmp_path) -> None:  # noqa: F811
    suite = SuiteSpec(**{**SUITE, "episodes": 3})
    config = EvalConfig(pi0_dir, suite, tmp_path / "results", progress=False)
    episodes = tmp_path / "results" / "episodes.jsonl"
    before_kill: list[str] = []
    with EnvPool(EngineSettings(num_workers=2, slots_per_worker=2)) as pool:
        victim = pool.pids[1]

        def kill_after_the_first_recorded_episodes() -> None:
            # pi0 first, then the checkpoint: kill while the checkpoint's episodes are in flight.
            while not (episodes.is_file() and "ckpt" in episodes.read_text()):
                time.sleep(0.02)
            before_kill.extend(episodes.read_text().splitlines())
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_after_the_first_recorded_episodes, daemon=True)
        killer.start()
        document = run_suite(config, [("ckpt", other_dir)], pool)
        killer.join(timeout=5)
        assert pool.replaced == 1 and victim not in pool.pids
    lines = episodes.read_text().splitlines()
    assert lines[: len(before_kill)] == before_kill  # nothing recorded before the kill is lost or rewritten
    rows = [json.loads(line) for line in lines]
    assert not any(r["sim_error"] for r in rows)  # the kill is no failure of the policy's
    # Every (policy, task, seed) is recorded once, with the result of an uninterrupted evaluation.
    assert len(rows) == len({(r["policy"], r["task"], r["seed"]) for r in rows}) == 2 * 2 * 3
    clean = run_suite(EvalConfig(pi0_dir, suite, tmp_path / "clean", progress=False), [("ckpt", other_dir)])
    assert json.dumps(document["policies"]) == json.dumps(clean["policies"])
