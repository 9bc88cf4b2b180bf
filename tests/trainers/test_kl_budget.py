"""Live forward KL(pi0 || pi) during training and the KL budget (fast simulator-free task)."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from tests.trainers.conftest import tiny_policy_cfg
from tests.trainers.fake_env import FakeReachVectorEnv
from vla_razor.checkpoints import list_checkpoints
from vla_razor.config import asset_path
from vla_razor.data.normalization import ActionNormStats
from vla_razor.data.steps import load_steps
from vla_razor.errors import UserError
from vla_razor.evaluation.forecast import calibrate_forecast, forecast_forgetting, save_calibration
from vla_razor.metrics.divergences import action_token_divergences
from vla_razor.policies import build_policy
from vla_razor.trainers.bc import BCSettings, train_bc
from vla_razor.trainers.kl_monitor import KLProbe, read_budget_record
from vla_razor.trainers.logger import read_metrics
from vla_razor.trainers.ppo import PPOSettings, train_ppo
from vla_razor.trainers.rft import RFTSettings
from vla_razor.workflows.training import make_forecaster

BASE = dict(
    lr=1e-2, num_iterations=6, num_steps=4, update_epochs=2, minibatch_size=8, save_every=1, keep_last=None
)


def _run(tmp_path, **kw):
    policy = build_policy(tiny_policy_cfg(finetune="full"))
    train_ppo(policy, FakeReachVectorEnv(), PPOSettings(**{**BASE, **kw}), tmp_path, {}, progress=False)
    return read_metrics(tmp_path)


def test_monitor_logs_kl_and_leaves_training_unchanged(tmp_path) -> None:
    plain = _run(tmp_path / "plain")
    watched = _run(tmp_path / "watched", kl_every=1, kl_states=16)
    kls = [m["train/forward_kl_pi0"] for m in watched]
    assert len(kls) == 6 and all(k >= 0 for k in kls) and kls[-1] > 0
    for a, b in zip(plain, watched, strict=True):
        for key in ("train/pg_loss", "train/v_loss", "train/approx_kl", "train/episode_success"):
            assert a[key] == b[key], key  # the monitor draws from its own generator only


def test_budget_stops_before_a_checkpoint_over_it(tmp_path) -> None:
    reference = [m["train/forward_kl_pi0"] for m in _run(tmp_path / "ref", kl_every=1, kl_states=16)]
    budget = max(reference[:2]) * 1.0001
    assert max(reference[2:]) > budget, reference  # the run does drift past its first two steps
    out = tmp_path / "budget"
    logged = _run(out, kl_every=1, kl_states=16, kl_budget=budget)
    record = read_budget_record(out)
    assert record is not None and record["forward_kl_at_stop"] > budget
    stop = record["stopped_before_step"]
    assert stop < 6 and len(logged) == stop
    saved = [int(p.name.split("_")[1]) for p in list_checkpoints(out)]
    assert saved and max(saved) == record["last_checkpoint_under_budget"] == stop - 1
    by_step = {m["step"]: m["train/forward_kl_pi0"] for m in logged}
    assert all(by_step[s] <= budget for s in saved)


def test_probe_matches_the_study_estimator(tmp_path) -> None:
    """One cached prefix per state reproduces action_token_divergences' forward KL with the same
    prefixes: the monitor reports the quantity the study reports."""
    policy = build_policy(tiny_policy_cfg(finetune="lora", lora={"r": 4, "alpha": 8}))
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    obs, _ = FakeReachVectorEnv(num_envs=8).reset(seed=3)
    batch = policy.prepare(obs, list(obs["instruction"]))
    probe = KLProbe.build(policy, batch, seed=11)
    study = action_token_divergences(policy, policy, batch, generator=torch.Generator().manual_seed(11))[
        "forward_kl"
    ]
    assert probe.forward_kl(policy) == pytest.approx(float(study.mean()), rel=1e-6)


def test_bad_budget_is_one_line() -> None:
    with pytest.raises(ValueError, match="trainer.kl_budget must be a finite number > 0, got -1"):
        PPOSettings(kl_every=1, kl_budget=-1)
    with pytest.raises(ValueError, match="needs trainer.kl_every > 0"):
        RFTSettings(kl_budget=0.5)
    assert json.loads(json.dumps(PPOSettings(kl_every=2, kl_budget=0.5).kl_budget)) == 0.5


def test_bc_logs_forward_kl_on_demo_states_and_obeys_the_budget(lift_demos, tmp_path) -> None:
    train = load_steps([lift_demos], ["agentview_image"], split="train")
    stats = ActionNormStats.from_actions(train.actions).to_dict()
    settings = dict(
        lr=2e-3, minibatch_size=16, num_iterations=12, log_every=4, val_every=0, save_every=4, shift_pad=0
    )
    policy = build_policy(tiny_policy_cfg(norm_stats=stats))
    train_bc(
        policy, train, BCSettings(**settings, kl_every=4, kl_states=16), tmp_path / "a", {}, progress=False
    )
    kls = [m["train/forward_kl_pi0"] for m in read_metrics(tmp_path / "a") if "train/forward_kl_pi0" in m]
    assert len(kls) == 3 and kls[-1] > kls[0] >= 0
    policy = build_policy(tiny_policy_cfg(norm_stats=stats))
    budget = (kls[0] + kls[1]) / 2  # BC on fixed labels drifts steadily away from pi0
    run = tmp_path / "b"
    train_bc(
        policy,
        train,
        BCSettings(**settings, kl_every=4, kl_states=16, kl_budget=budget),
        run,
        {},
        progress=False,
    )
    record = read_budget_record(run)
    assert record["stopped_before_step"] == 8 and record["last_checkpoint_under_budget"] == 4
    assert [p.name for p in list_checkpoints(run)] == ["step_000004"]


def _calibration(pi0_hash: str = "sha256:" + "0" * 64, new_task: str = "reach"):
    kl = [0.1, 0.5, 1.0, 2.0, 0.2, 0.8, 1.5, 3.0]
    forgetting = [0.01, 0.04, 0.1, 0.2, 0.03, 0.07, 0.16, 0.28]
    runs = ["a"] * 4 + ["b"] * 4
    return calibrate_forecast(kl, forgetting, runs, suite="s", pi0_hash=pi0_hash, new_task=new_task)


def test_calibrated_run_logs_the_forecast_with_its_interval(tmp_path) -> None:
    calibration = _calibration()

    def forecaster(kl: float) -> dict[str, float]:
        f = forecast_forgetting(calibration, kl, suite="s", pi0_hash=calibration.pi0_hash)
        return {
            "forecast_forgetting": f.forgetting,
            "forecast_forgetting_low": f.low,
            "forecast_forgetting_high": f.high,
        }

    policy = build_policy(tiny_policy_cfg(finetune="full"))
    settings = PPOSettings(**BASE, kl_every=2, kl_states=16)
    train_ppo(policy, FakeReachVectorEnv(), settings, tmp_path, {}, progress=False, forecaster=forecaster)
    measured = [m for m in read_metrics(tmp_path) if "train/forward_kl_pi0" in m]
    assert len(measured) == 6  # kl_every=2 plus every checkpoint (save_every=1)
    for m in measured:
        expected = forecast_forgetting(
            calibration, m["train/forward_kl_pi0"], suite="s", pi0_hash=calibration.pi0_hash
        )
        assert m["train/forecast_forgetting"] == pytest.approx(expected.forgetting)
        assert (
            m["train/forecast_forgetting_low"]
            < m["train/forecast_forgetting"]
            < m["train/forecast_forgetting_high"]
        )


def test_forecast_calibration_of_another_task_or_pi0_is_one_line(tmp_path) -> None:
    cfg = OmegaConf.create(
        {"task": {"name": "grasp_lift_bread"}, "policy": {"pretrained": asset_path("pi0_tiny")}}
    )
    save_calibration(tmp_path / "other_task.json", _calibration(new_task="lift"))
    with pytest.raises(UserError, match="new task is 'lift', but this run trains on 'grasp_lift_bread'"):
        make_forecaster(cfg, str(tmp_path / "other_task.json"))
    save_calibration(tmp_path / "other_pi0.json", _calibration(new_task="grasp_lift_bread"))
    with pytest.raises(UserError, match="with pi0 '000000000000', but this run uses"):
        make_forecaster(cfg, str(tmp_path / "other_pi0.json"))
    with pytest.raises(UserError, match="does not exist"):
        make_forecaster(cfg, str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="needs trainer.kl_every > 0"):
        PPOSettings(forecast_calibration=str(tmp_path / "other_pi0.json"))
