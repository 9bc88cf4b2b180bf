"""The command line: verbs, hydra overrides, one-line errors, and the expert rollout/demo verbs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.evaluation.test_study_report import _document
from vla_razor.config import asset_path
from vla_razor.errors import BadInputError
from vla_razor.evaluation.identity import policy_content_hash
from vla_razor.evaluation.study import calibrate_from_results, load_results
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.video import read_video
from vla_razor.workflows.study import rebuild_report
from vla_razor.workflows.sweep import check_entries, run_name, train_overrides

REPO = Path(__file__).resolve().parents[2]
PI0_TINY = Path(asset_path("pi0_tiny"))


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from vla_razor.cli import main; main()", *args]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def test_usage_and_unknown_verb() -> None:
    out = cli()
    assert out.returncode == 0 and "demos" in out.stdout and "razor" in out.stdout
    bad = cli("juggle")
    assert bad.returncode != 0
    assert "unknown verb 'juggle'" in bad.stderr and "valid verbs" in bad.stderr


BAD_INPUTS: list[tuple[tuple[str, ...], str]] = [
    (("demos", "task=lift", "episodes=0"), "episodes must be a positive integer, got 0"),
    (
        ("rollout", "task=lift", "policy=tiny", "checkpoint=/nonexistent/ckpt", "episodes=1"),
        "does not exist",
    ),
    (("train", "trainer=bc", "trainer.lr=-1"), "trainer.lr must be a finite number > 0, got -1.0"),
    (("train", "trainer=bc", "policy.pretrained=/nonexistent"), "does not exist"),
    (("eval", "suite.episodes=0"), "episodes must be > 0"),
    # Unknown keys are refused (never dropped) with the list of valid ones.
    (
        ("train", "trainer=rft", "+trainer.grad_clip=1.0"),
        "unknown trainer setting(s) grad_clip for RFTSettings; valid: name, lr,",
    ),
    (("pretrain", "+policy.hiden_size=3"), "unknown tiny policy key(s) hiden_size; valid: family,"),
    (("train", "+policy.vision_grid=4"), "vision_grid have no effect on the saved policy"),
    (
        ("razor", "sweep=[{trainer: dpo, lr: 1.0e-5}]", "out_dir={tmp}/razor"),
        "names trainer 'dpo'; valid: bc, bc_kl, ppo, rft, dagger",
    ),
    # The forecast verb: its input files are written by _forecast_bad_input_files.
    (("forecast", f"checkpoints=[{PI0_TINY}]"), "a forecast needs a calibration"),
    (("forecast", "calibration={tmp}/other.json", f"checkpoints=[{PI0_TINY}]"), "with pi0 'ffffffffffff'"),
    (("forecast", "results={tmp}/one_run"), "needs checkpoints from at least 2 training runs"),
]
UNKNOWN_TASK = ("demos", "task=juggle")  # hydra's own error: it lists the task configs there are


@pytest.fixture(scope="module")
def bad_input_ends(tmp_path_factory) -> list[dict]:
    """How each bad command line ended, all run in one child process (tests/cli/bad_inputs.py)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    _forecast_bad_input_files(root)
    lines = [args for args, _ in BAD_INPUTS] + [UNKNOWN_TASK]
    cases = [
        [a.replace("{tmp}", str(root)) for a in (*args, f"hydra.run.dir={root / str(i)}")]
        for i, args in enumerate(lines)
    ]
    (root / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cli.bad_inputs", str(root / "cases.json"), str(root / "ends.json")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((root / "ends.json").read_text())


@pytest.mark.parametrize(
    ("case", "message"), [(i, m) for i, (_, m) in enumerate(BAD_INPUTS)], ids=lambda v: str(v)[:40]
)
def test_bad_input_is_one_line(bad_input_ends, case, message) -> None:
    # The SystemExit's code is what Python prints as stderr's last line, exiting with status 1.
    end = bad_input_ends[case]["exit"]
    assert isinstance(end, str), f"{BAD_INPUTS[case][0]} ended with {end!r}, not a one-line error"
    assert end.startswith("error:") and "\n" not in end and message in end, end
    assert "Traceback" not in bad_input_ends[case]["stderr"]


def test_unknown_task_lists_valid_options(bad_input_ends) -> None:
    end = bad_input_ends[len(BAD_INPUTS)]
    assert end["exit"] not in (None, 0)
    assert "juggle" in end["stderr"] and "lift" in end["stderr"], end


@pytest.mark.parametrize("bug", ["TypeError", "ValueError"])
def test_code_bug_keeps_its_traceback(tmp_path, bug) -> None:
    # A command whose code is broken (not its input): even a ValueError must not read like bad input.
    code = (
        "import vla_razor.commands.demos as demos\n"
        f"def broken(cfg):\n    raise {bug}('a bug deep inside the command')\n"
        "demos.run = broken\n"
        "from vla_razor.cli import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "demos", "task=lift", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
    assert out.returncode != 0
    assert "Traceback (most recent call last)" in out.stderr, out.stderr[-2000:]
    assert f"{bug}: a bug deep inside the command" in out.stderr
    assert not any(line.startswith("error:") for line in out.stderr.splitlines())


def test_expert_rollout_writes_readable_videos(tmp_path) -> None:
    out = cli(
        "rollout",
        "task=lift",
        "policy=expert",
        "episodes=2",
        f"video_dir={tmp_path}/videos",
        "render_camera=frontview",
        "render_size=96",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["lift_seed100000_success.mp4", "lift_seed100001_success.mp4"]
    frames = read_video(videos[0])
    assert frames.shape[1:] == (96, 96, 3) and len(frames) > 5
    assert frames.std() > 5  # a real picture, not a blank frame


def test_demos_file_round_trip_replays_states(tmp_path) -> None:
    path = tmp_path / "lift.hdf5"
    out = cli(
        "demos",
        "task=lift",
        "episodes=3",
        "engine.num_workers=2",
        "noise_std=0.05",
        f"out={path}",
        "env.cameras=[agentview]",
        "env.image_size=32",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    from vla_razor import envs
    from vla_razor.data.demos import DemoFile

    with DemoFile(path) as demo:
        assert demo.attrs["episodes_succeeded"] == 3 and demo.attrs["episodes_tried"] >= 3
        assert demo.attrs["noise_std"] == pytest.approx(0.05)
        ep = demo.episode("demo_0")
        env = envs.make_env(**demo.env_kwargs)  # rebuilt from the file's metadata alone
    try:
        assert ep["obs"]["agentview_image"].shape[1:] == (32, 32, 3)
        # The stored label is the clean expert action; the executed one carries the DART noise.
        assert not np.allclose(ep["actions"][:, :6], ep["executed_actions"][:, :6])
        for t in (0, len(ep["states"]) // 2, len(ep["states"]) - 1):
            obs = env.unwrapped.reset_to(ep["states"][t])
            np.testing.assert_allclose(obs["proprio"], ep["obs"]["proprio"][t], atol=1e-6)
            np.testing.assert_allclose(obs["object_state"], ep["obs"]["object_state"][t], atol=1e-6)
            # Software GL may shade a handful of edge pixels differently; the scene itself must match.
            differ = np.any(obs["agentview_image"] != ep["obs"]["agentview_image"][t], axis=-1).mean()
            assert differ < 0.01, differ
    finally:
        env.close()
    with h5py.File(path) as f:
        assert set(f["data/demo_0"].keys()) >= {"obs", "actions", "rewards", "dones", "states"}
        assert f["data/demo_0/dones"][-1] == 1


def test_policy_rollout_uses_the_checkpoint_cameras(tmp_path) -> None:
    from tests.trainers.conftest import tiny_policy_cfg
    from vla_razor.policies import build_policy

    build_policy(tiny_policy_cfg(extra_words=["lift", "the", "red", "cube"])).save_pretrained(tmp_path / "pi")
    out = cli(
        "rollout",
        "task=lift",
        "policy=tiny",
        f"checkpoint={tmp_path / 'pi'}",
        "episodes=1",
        "task.env.horizon=5",
        f"video_dir={tmp_path}/videos",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (video,) = (tmp_path / "videos").glob("*.mp4")
    assert video.name == "lift_seed100000_failure.mp4"
    assert read_video(video).shape[1:] == (32, 32, 3)  # what the policy sees: agentview at 32x32


@pytest.mark.slow  # about 75 s; tests/envs/test_task_config.py checks the same task in worker processes
def test_config_defined_task_end_to_end(tmp_path) -> None:
    # configs/task/nut_assembly_square.yaml defines a task the library does not ship; nothing else
    # registers it. Its expert (via _target_) solves it and the success check sees it ...
    out = cli(
        "rollout",
        "task=nut_assembly_square",
        "policy=expert",
        "episodes=1",
        "env.cameras=[agentview]",
        f"video_dir={tmp_path}/videos",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert [v.name for v in (tmp_path / "videos").glob("*.mp4")] == [
        "nut_assembly_square_seed100000_success.mp4"
    ]
    # ... and the suite file that lists it as a prior skill evaluates end to end (pi0, small N), in the
    # suite's worker processes.
    out = cli(
        "eval",
        "suite=square_nut",
        "suite.prior_tasks=[nut_assembly_square]",  # the suite's other prior skill (lift) costs time only
        "suite.episodes=1",
        "suite.kl_states=4",
        "suite.kl_state_seeds=1",
        "videos=0",
        f"out_dir={tmp_path}/eval",
        f"hydra.run.dir={tmp_path}/h2",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert (doc["suite"]["name"], doc["suite"]["prior_tasks"]) == ("square_nut", ["nut_assembly_square"])
    tasks = doc["policies"]["pi0"]["tasks"]
    assert tasks["nut_assembly_square"]["n"] == 1 and tasks["grasp_lift_bread"]["n"] == 1
    assert "| policy | nut_assembly_square | grasp_lift_bread (new) |" in out.stdout


def test_ppo_with_in_training_evaluation_on_one_env_pool(tmp_path) -> None:
    """`vla-razor train trainer=ppo` end to end on the real simulator: rollouts, in-training evaluation
    and KL states all run on the command's one env pool."""
    run = tmp_path / "run"
    out = cli(
        "train",
        "trainer=ppo",
        "task=lift",
        "task.env.horizon=8",
        "trainer.num_iterations=1",
        "trainer.num_steps=6",
        "trainer.minibatch_size=6",
        "trainer.eval_every=1",
        "eval.episodes=2",
        "eval.kl_states=4",
        "eval.kl_state_seeds=1",
        "engine.num_workers=2",
        "logging.tensorboard=false",
        f"out_dir={run}",
        f"hydra.run.dir={tmp_path}/h",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    evals = sorted((run / "eval").glob("step_*.json"))
    assert [p.name for p in evals] == ["step_000000.json", "step_000001.json"]
    first = json.loads(evals[0].read_text())
    assert first["episodes"] == 2 and first["seeds"] == [100_000, 100_001] and first["kl_states"] == 4
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train/env_steps_per_s" in m for m in metrics)


def test_razor_records_each_run_as_a_unit_and_rebuilds_the_report(tmp_path) -> None:
    """`vla-razor razor` end to end at toy size: pi0 first, then one PPO run trained, evaluated and
    recorded on its own; the report rebuilds from the recorded study alone, as `--from-results` does."""
    study = tmp_path / "study"
    common = [
        "suite.prior_tasks=[lift]",
        "suite.episodes=1",
        "suite.kl_states=4",
        "suite.kl_state_seeds=1",
        "videos=0",
        "engine.num_workers=2",
        f"out_dir={tmp_path}/razor",
        f"study_dir={study}",
    ]
    run_overrides = [
        "trainer.num_iterations=2",
        "trainer.num_steps=6",
        "trainer.minibatch_size=6",
        "trainer.save_every=1",
        "task.env.horizon=6",
        "logging.tensorboard=false",
    ]
    quoted = ", ".join(f"'{o}'" for o in run_overrides)
    sweep = f"sweep=[{{trainer: ppo, lr: 1.0e-5, seed: 0, overrides: [{quoted}]}}]"
    out = cli("razor", *common, sweep, f"hydra.run.dir={tmp_path}/h", timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "pi0 on the new task 'grasp_lift_bread':" in out.stdout
    unit = json.loads((study / "runs" / "ppo_lr1e-05_seed0.json").read_text())
    assert sorted(unit["policies"]) == [f"ppo_lr1e-05_seed0/step_00000{i}" for i in (1, 2)]
    assert unit["pi0"] == json.loads((study / "pi0.json").read_text())["pi0"]
    # What the unit cost, and where: trained from scratch here, so its training time is whole.
    cost = unit["compute"]
    assert cost["train_s"] > 0 and cost["eval_s"] > 0 and cost["train_resumed"] is False
    start, stop = (datetime.fromisoformat(t) for t in cost["span_utc"])  # the process's span, UTC
    assert start.tzinfo is not None and (stop - start).total_seconds() >= cost["train_s"] + cost["eval_s"] - 2
    assert cost["machine"].endswith("usable cores")
    assert sorted(p.name for p in (study / "states").iterdir()) == [
        "kl_states.npz",
        "kl_states_lift.npz",
    ]
    # On a machine without runs/ (a new session), nothing recorded is trained or played again.
    shutil.rmtree(tmp_path / "razor")
    again = cli("razor", *common, sweep, f"hydra.run.dir={tmp_path}/h2", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (tmp_path / "razor" / "train").exists()
    assert not (tmp_path / "razor" / "results" / "episodes.jsonl").exists()
    # What `--from-results` runs, in this process (the verb's own flags: tests/evaluation/test_replication.py).
    rebuild_report(str(study), tmp_path / "h3")
    report = (study / "report.md").read_text()
    assert "ppo_lr1e-05_seed0/step_000002" in report and "not meaningful" in report
    assert "Wall time recorded for 1 of 1 runs" in report
    assert re.search(r"\| ppo \| \d+\.\d h \(1 run\) \| \d+\.\d h \(1 run\) \|", report)


def _forecast_results(n_runs_per_method: int, steps: int) -> dict:
    """A results document on the default suite and the committed pi0: forgetting linear in KL plus noise."""
    doc = _document(n_runs_per_method, steps)
    doc["suite"] = {"name": "default", "new_task": "grasp_lift_bread", "prior_tasks": ["lift"]}
    doc["pi0"] = {"source": "asset:pi0_tiny", "hash": policy_content_hash(PI0_TINY)}
    return doc


def _forecast_bad_input_files(root: Path) -> None:
    """What the forecast verb's bad inputs in BAD_INPUTS read: another pi0's calibration, one run's results."""
    for name, doc in (("results", _forecast_results(3, 3)), ("one_run", _forecast_results(1, 5))):
        if name == "one_run":  # 5 checkpoints, but all of one training run
            doc["policies"] = {k: v for k, v in doc["policies"].items() if not k.startswith("bc_")}
        (root / name).mkdir()
        (root / name / "results.json").write_text(json.dumps(doc))
    calibration, _ = calibrate_from_results(load_results(root / "results"))
    other = {**calibration.to_dict(), "pi0_hash": "sha256:" + "f" * 64}
    (root / "other.json").write_text(json.dumps(other))


def test_forecast_calibrates_validates_and_forecasts_from_kl_alone(tmp_path) -> None:
    """Its bad inputs (no calibration, another pi0's, one run's results) are in BAD_INPUTS above."""
    doc = _forecast_results(3, 3)  # 18 checkpoints of 6 runs
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.json").write_text(json.dumps(doc))
    out = cli("forecast", f"results={tmp_path}/results", f"hydra.run.dir={tmp_path}/h1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "leave-one-run-out: 90% interval coverage" in out.stdout
    calibration = json.loads((tmp_path / "results" / "forecast_calibration.json").read_text())
    assert (
        calibration["n"] == 18
        and calibration["n_runs"] == 6
        and calibration["new_task"] == "grasp_lift_bread"
    )
    # pi0 itself as the "checkpoint": KL 0, so the forecast is the fit's intercept.
    shutil.copytree(PI0_TINY, tmp_path / "pi0_copy")
    common = ["suite.kl_states=8", "suite.kl_state_seeds=1", "engine.num_workers=1"]
    out = cli(
        "forecast",
        f"calibration={tmp_path}/results/forecast_calibration.json",
        f"checkpoints=[{tmp_path}/pi0_copy]",
        f"out={tmp_path}/forecasts.json",
        *common,
        f"hydra.run.dir={tmp_path}/h2",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads((tmp_path / "forecasts.json").read_text())["forecasts"]
    assert row["forward_kl"] == 0.0
    assert row["forecast_forgetting"] == pytest.approx(calibration["coefficients"][-1])
    assert row["low"] < row["forecast_forgetting"] < row["high"]


def test_razor_warm_start_entries(tmp_path) -> None:
    """A sweep entry may start from an earlier entry's last checkpoint (PPO after a short BC warm-up); the
    suite still measures it against pi0. Checked on the overrides a sweep produces (no training here)."""
    bc = {"trainer": "bc", "lr": 1e-4, "seed": 0}
    ppo = {"trainer": "ppo", "lr": 2e-5, "seed": 0, "warm_start": run_name(bc)}
    assert run_name(ppo) == "ppo_lr2e-05_seed0_from-bc_lr0.0001_seed0"
    check_entries([bc, ppo], [])
    with pytest.raises(BadInputError, match="not an earlier entry; earlier runs: none"):
        check_entries([ppo, bc], [])
    suite = SuiteSpec("t", "grasp_lift_bread", ("lift",), 2, 100_000, 4, 1)
    with pytest.raises(FileNotFoundError, match="warm start 'bc_lr0.0001_seed0' has no checkpoint"):
        train_overrides(ppo, suite, "pi0", tmp_path, tmp_path / "d.hdf5", [])
    step = tmp_path / "bc_lr0.0001_seed0" / "checkpoints" / "step_000010"
    step.mkdir(parents=True)
    (step / "trainer_state.pt").write_bytes(b"")
    _, overrides = train_overrides(ppo, suite, "pi0", tmp_path, tmp_path / "d.hdf5", [])
    assert f"policy.pretrained={step / 'policy'}" in overrides


@pytest.mark.slow  # two training jobs started through submitit: about 80 s on 2 cores
def test_train_sweep_runs_its_jobs_through_hydras_submitit_launcher(tmp_path) -> None:
    """`vla-razor train -m hydra/launcher=submitit_local`: what `hydra/launcher=submitit_slurm` does on a
    cluster (each sweep job pickled, started as a job of its own, its result brought back), with local
    processes for sbatch."""
    sweep = tmp_path / "sweep"
    out = cli(
        "train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=20",
        "hydra.launcher.cpus_per_task=1",
        "trainer=ppo",
        "seed=0,1",
        "trainer.num_iterations=1",
        "trainer.num_steps=6",
        "trainer.minibatch_size=6",
        "trainer.save_every=1",
        "task.env.horizon=6",
        "logging.tensorboard=false",
        "engine.num_workers=1",
        f"hydra.sweep.dir={sweep}",
        f"out_dir={sweep}/ppo_seed${{seed}}",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in out.stdout + out.stderr
    for seed in (0, 1):
        assert (sweep / f"ppo_seed{seed}" / "checkpoints" / "step_000001" / "policy").is_dir()
    # Each job ran as a submitit job: its pickled call, its result and its log.
    assert len(list(sweep.glob(".submitit/*/*_result.pkl"))) == 2
