"""Every script in benchmarks/ runs at toy size, so none can rot unnoticed (policy_throughput.py once
crashed for months after pi0 gained its second camera). Each runs in a fresh process, exactly as a user
runs it, and must exit 0 and print its headline."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

# script -> (toy-size arguments, a line fragment its output must contain)
TOY_RUNS: dict[str, tuple[list[str], str]] = {
    "engine_cpu.py": (
        ["--task", "lift", "--episodes", "1", "--slots", "1", "--render-profiles", "full", "fast"],
        "plain loop under fast",
    ),
    "env_throughput.py": (
        ["--tasks", "lift", "--cameras", "policy", "--steps", "2", "--repeats", "1"],
        "render_profile=fast",
    ),
    "eval_throughput.py": (
        ["--episodes", "1", "--tasks", "lift", "--kl-states", "0", "--checkpoints", "0"],
        "speed-up per env step",
    ),
    # Every section of the GPU scale run (robosuite envs, engine, decode modes, PPO, update levers, render).
    "gpu_scale.py": (["--device", "cpu", "--size", "tiny"], "sections: 7 ok"),
    "label_distance.py": (
        ["--policy", "vla_razor/assets/pi0_tiny", "--task", "lift", "--episodes", "1", "--demo-episodes", "2"]
        + [
            "--demo-steps",
            "16",
            "--demos",
            str(Path(tempfile.gettempdir()) / "vla_razor_toy_lift_demos.hdf5"),
        ],
        "pi0's cross-entropy on each arm's labels",
    ),
    "learning_margins.py": (["--seeds", "1", "--iterations", "2"], "after min"),
    "policy_throughput.py": (["--batches", "1", "--repeats", "1"], "reference overhead with LoRA"),
    "profile_sensitivity.py": (["--episodes", "1", "--tasks", "lift"], "McNemar"),
    "relabel_takeover.py": (
        ["--policy", "vla_razor/assets/pi0_tiny", "--task", "lift", "--episodes", "1", "--takeover", "3"],
        "expert success on graspable",
    ),
    "render_profile.py": (["--tasks", "lift", "--steps", "2", "--repeats", "1", "--quick"], "fast (shipped)"),
    "sampled_success.py": (
        ["--policy", "vla_razor/assets/pi0_tiny", "--tasks", "lift", "--episodes", "1", "--workers", "1"],
        "McNemar p",
    ),
    "train_throughput.py": (
        ["--num-envs", "2", "--updates", "1", "--num-steps", "2", "--bc-steps", "1", "--skip-previous"],
        "env-steps/s",
    ),
}
# The toy runs that take 17-70 s on 2 cores run with the slow tests (`make test-slow`), so the default run
# keeps its 15-minute budget; their code paths are in the default run through the library's own tests, and
# gpu_scale.py's toy run (robosuite envs, the engine, PPO, decoding) stays in it.
SLOW = {
    "engine_cpu.py",
    "eval_throughput.py",
    "label_distance.py",  # the policy's scoring and the env's expert labels have their own tests
    "profile_sensitivity.py",
    "relabel_takeover.py",  # about 17 s; the relabelling expert's own tests are tests/envs/test_relabel.py
    "sampled_success.py",
    "train_throughput.py",
}
# gpu_smoke.py has its own toy-size test (tests/policies/test_openvla_quirks.py, slow: one to two minutes);
# sim_bundle.py too (tests/test_sim_bundle.py, slow: it builds every task twice).
COVERED_ELSEWHERE = {"gpu_smoke.py", "sim_bundle.py"}


def test_every_benchmark_has_a_toy_run():
    scripts = {p.name for p in BENCHMARKS.glob("*.py")}
    assert scripts - COVERED_ELSEWHERE == set(TOY_RUNS), "add the new script to TOY_RUNS"
    assert set(TOY_RUNS) >= SLOW, f"SLOW names no toy run: {sorted(SLOW - set(TOY_RUNS))}"


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s for s in sorted(TOY_RUNS)]
)
def test_benchmark_runs_at_toy_size(script):
    args, headline = TOY_RUNS[script]
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert headline in proc.stdout, proc.stdout[-2000:]
