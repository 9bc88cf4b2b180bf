"""The shipped study configs compose into valid studies, on the base policy and suite they say."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from vla_razor.config import asset_path, config_dir, register_resolvers
from vla_razor.workflows.study import StudyConfig
from vla_razor.workflows.sweep import check_entries, lr_rule, run_name


def _study(name: str) -> StudyConfig:
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return StudyConfig.from_cfg(compose(config_name=name))


@pytest.mark.parametrize("name", ["quickstart", "study2", "warm_start"])
def test_pick_place_studies_start_from_pi0_v2_with_sampled_success(name: str) -> None:
    study = _study(name)
    assert Path(study.evaluation.pi0) == Path(asset_path("pi0_tiny_v2"))
    suite = study.evaluation.suite
    assert suite.decode == "sampled" and not suite.sampling.greedy
    assert study.sweep and all(
        entry["trainer"] in {"ppo", "bc", "bc_kl", "rft", "dagger"} for entry in study.sweep
    )
    check_entries(study.sweep, study.runs)


def test_quickstart_trains_ppo_and_bc_on_the_milk() -> None:
    study = _study("quickstart")
    assert study.evaluation.suite.new_task == "pick_place_milk"
    assert [e["trainer"] for e in study.sweep] == ["ppo", "bc"]


def test_study2_runs_every_arm_at_three_seeds_and_dagger_at_bcs_best_rate() -> None:
    """The committed design: 3 seeds of PPO, RFT, BC+KL and BC at each of three rates, then DAgger at the
    BC rate the rule picks once every BC unit is recorded (so every BC entry comes before DAgger's)."""
    sweep = _study("study2").sweep
    arms: dict[str, set[int]] = {}
    for entry in sweep:
        arm = f"{entry['trainer']} {entry['lr']}"
        arms.setdefault(arm, set()).add(entry["seed"])
    assert all(seeds == {0, 1, 2} for seeds in arms.values()), arms
    assert {e["lr"] for e in sweep if e["trainer"] == "bc"} == {1e-5, 3e-5, 1e-4}
    dagger = [e for e in sweep if e["trainer"] == "dagger"]
    assert len(dagger) == 3 and all(lr_rule(e) == "bc" for e in dagger)
    last_bc = max(i for i, e in enumerate(sweep) if e["trainer"] == "bc")
    assert all(sweep.index(e) > last_bc for e in dagger)
    assert run_name(dagger[0]) == "dagger_lr-best-of-bc_seed0"


def test_warm_start_recipe_runs_ppo_from_its_bc_warm_up() -> None:
    study = _study("warm_start")
    assert study.evaluation.suite.new_task == "pick_place_bread"
    bc, ppo = study.sweep
    assert ppo["warm_start"] == f"bc_lr{bc['lr']:g}_seed{bc['seed']}"


def test_default_razor_study_is_unchanged_greedy_on_pi0_v1() -> None:
    study = _study("razor")
    assert Path(study.evaluation.pi0) == Path(asset_path("pi0_tiny"))
    assert study.evaluation.suite.decode == "greedy"
