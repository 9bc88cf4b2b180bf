"""The rollout engine on the real simulator with the committed pi0: the same episodes as the previous
evaluation path and as a plain one-env loop, identical episodes for pi0 and a byte copy of it in one
command, a killed worker, and an evaluation stopped by Ctrl-C or a kill (no process left; it resumes)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.rollouts import interrupted_eval
from vla_razor import envs
from vla_razor.config import asset_path
from vla_razor.evaluation.runner import EvalConfig, run_suite
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.policies import load_policy
from vla_razor.rollouts import EngineSettings, EnvPool, EpisodeJob, play_episodes, policy_env_kwargs

REPO = Path(__file__).resolve().parents[2]
PI0 = Path(asset_path("pi0_tiny"))
TASKS = ["lift", "door", "grasp_lift_can", "grasp_lift_bread"]  # configs/suite/default.yaml
N = 2


def episodes(out: Path, policy: str) -> dict[str, list[tuple[int, bool, int, str | None]]]:
    """A policy's logged episodes per task, in seed order."""
    rows = [
        json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines() if line.endswith("}")
    ]
    per: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        if r["policy"] == policy:
            per.setdefault(r["task"], []).append((r["seed"], r["success"], r["length"], r["sim_error"]))
    return per


@pytest.fixture(scope="module")
def pi0():
    return load_policy(PI0, finetune="frozen")


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pi0 and a byte copy of its folder as a 'checkpoint', evaluated in one command on the default
    suite's tasks (N = 2, machine-default engine)."""
    copy = tmp_path_factory.mktemp("ckpt") / "pi0_copy"
    shutil.copytree(PI0, copy)
    out = tmp_path_factory.mktemp("results")
    suite = SuiteSpec("default", TASKS[-1], tuple(TASKS[:-1]), N, 100_000, 8, 1)
    run_suite(EvalConfig(PI0, suite, out, progress=False), [("pi0_copy", copy)])
    return out


def test_pi0_and_its_copy_play_identical_episodes_on_every_task(suite_run) -> None:
    mine, copy = episodes(suite_run, "pi0"), episodes(suite_run, "pi0_copy")
    assert sorted(mine) == sorted(TASKS) and all(len(v) == N for v in mine.values())
    assert mine == copy
    outcomes = {e[1] for eps in mine.values() for e in eps}
    assert outcomes == {True, False}  # pi0 succeeds on its skills and fails on the new task


def test_engine_plays_the_previous_evaluation_paths_episodes(suite_run) -> None:
    reference = json.loads((Path(__file__).parent / "old_path_pi0.json").read_text())
    digest = hashlib.sha256((PI0 / "base" / "model.safetensors").read_bytes()).hexdigest()
    assert digest == reference["pi0_model_sha256"], (
        "pi0 changed: re-record old_path_pi0.json (see its source)"
    )
    mine = episodes(suite_run, "pi0")
    for task in TASKS:
        expected = [(s, ok, n, None) for s, ok, n in reference["episodes"][task][:N]]
        assert mine[task] == expected, task


def plain_episode(policy, task: str, seed: int) -> tuple[bool, int]:
    """The simplest possible evaluation: one env in this process, a batch of one, greedy actions."""
    env = envs.make_env(task, **policy_env_kwargs(policy))
    try:
        obs, _ = env.reset(seed=seed)
        for length in range(1, env.horizon + 1):
            batch = policy.prepare(
                {k: np.asarray(v)[None] for k, v in obs.items() if k != "instruction"}, [obs["instruction"]]
            )
            with torch.no_grad():
                action = policy.act(batch, greedy=True).actions[0]
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                return bool(info["is_success"]), length
    finally:
        env.close()
    raise AssertionError("the episode did not end at the horizon")


@pytest.mark.parametrize("task", TASKS)
def test_engine_equals_a_plain_one_env_loop(suite_run, pi0, task) -> None:
    seed, success, length, _ = episodes(suite_run, "pi0")[task][0]
    assert plain_episode(pi0, task, seed) == (success, length)


def test_killed_worker_is_replaced_and_its_episodes_are_played_again(pi0) -> None:
    jobs = [EpisodeJob({"task": "lift", **policy_env_kwargs(pi0)}, 100_000 + i) for i in range(4)]
    with EnvPool(EngineSettings(num_workers=2, slots_per_worker=2)) as pool:
        victim = pool.pids[1]

        def kill_once(job, episode) -> None:
            if pool.pids[1] == victim:
                os.kill(victim, signal.SIGKILL)  # what the OOM killer or a segfault does

        played = play_episodes(pi0, pool, jobs, on_episode=kill_once)
        assert pool.replaced == 1 and victim not in pool.pids
        clean = play_episodes(pi0, pool, jobs)
    # The killed process said nothing about the policy: its episodes were replayed from their seeds, so
    # every episode is exactly the uninterrupted one (greedy actions, seeded resets).
    assert [p.episode for p in played] == [p.episode for p in clean]
    assert not any(p.episode.sim_error for p in played)


def test_an_episode_whose_worker_dies_twice_is_a_failure(pi0, monkeypatch) -> None:
    jobs = [EpisodeJob({"task": "lift", **policy_env_kwargs(pi0)}, 100_000)]
    act = pi0.act
    with EnvPool(EngineSettings(num_workers=1, slots_per_worker=1)) as pool:
        kills: list[int] = []

        def act_then_kill(batch, **kwargs):  # the worker dies at the episode's first action, twice
            if len(kills) < 2:
                kills.append(pool.pids[0])
                os.kill(pool.pids[0], signal.SIGKILL)
            return act(batch, **kwargs)

        monkeypatch.setattr(pi0, "act", act_then_kill)
        played = play_episodes(pi0, pool, jobs)
        assert pool.replaced == 2 and len(set(kills)) == 2
    episode = played[0].episode
    assert not episode.success and "env worker died" in (episode.sim_error or "")


def _group_alive(pgid: int) -> list[int]:
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


@pytest.mark.parametrize(
    "sig",
    # The kill is the default run's case, the harder one: no handler of ours runs, and the workers must
    # still go. Ctrl-C (about 50 s more) runs with the slow tests.
    [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGKILL],
    ids=["ctrl-c", "kill"],
)
def test_interrupted_evaluation_leaves_no_process_and_resumes(suite_run, tmp_path, sig) -> None:
    tasks = ["lift"]
    out = tmp_path / "results"
    stderr = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 (a pipe could fill up and stall the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.rollouts.interrupted_eval", str(PI0), str(out), *tasks],
        cwd=REPO,
        start_new_session=True,  # its own process group: every process it starts can be found after
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    log = out / "episodes.jsonl"
    deadline = time.monotonic() + 300
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-2000:]
        assert time.monotonic() < deadline, "no episode finished in 300 s"
        time.sleep(0.2)
    os.kill(proc.pid, sig)  # the evaluation's process only, as a kill would; Ctrl-C reaches it the same way
    proc.wait(timeout=60)
    stderr.close()
    assert proc.returncode != 0
    deadline = time.monotonic() + 60
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group_alive(proc.pid) == [], "processes of the interrupted evaluation are still running"
    done = len(log.read_text().splitlines())
    assert done < len(tasks) * interrupted_eval.EPISODES
    run_suite(EvalConfig(PI0, interrupted_eval.suite(tasks), out, progress=False), [])
    resumed = episodes(out, "pi0")
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    assert len(rows) == len({(r["task"], r["seed"]) for r in rows}) == len(tasks) * interrupted_eval.EPISODES
    uninterrupted = episodes(suite_run, "pi0")
    for task in tasks:
        assert resumed[task][:N] == uninterrupted[task]
