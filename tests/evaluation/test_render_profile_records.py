"""A results folder holds one render profile, and a checkpoint is measured against a pi0 that saw the
same images (no episodes are played here: the checks run before any)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainers.conftest import tiny_policy_cfg
from vla_razor.errors import BadInputError
from vla_razor.evaluation.runner import check_like_pi0
from vla_razor.evaluation.store import ResultsStore
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.policies import build_policy, load_policy
from vla_razor.policies.base import read_policy_record
from vla_razor.rollouts import evaluate_under_profile, policy_env_kwargs

SUITE = SuiteSpec(
    name="t",
    new_task="grasp_lift_can",
    prior_tasks=("lift",),
    episodes=1,
    seed=100_000,
    kl_states=0,
    kl_state_seeds=1,
)


def _saved(path: Path, profile: str) -> Path:
    build_policy(tiny_policy_cfg(render_profile=profile)).save_pretrained(path)
    return path


def test_a_policy_records_its_profile_and_envs_follow_it(tmp_path):
    policy = load_policy(_saved(tmp_path / "fast", "fast"))
    assert read_policy_record(tmp_path / "fast")["render_profile"] == "fast"
    assert policy_env_kwargs(policy)["render_profile"] == "fast"
    evaluate_under_profile(policy, "full")  # asked for explicitly
    assert policy_env_kwargs(policy)["render_profile"] == "full"


def test_checkpoint_of_another_profile_than_pi0_is_refused(tmp_path):
    pi0 = read_policy_record(_saved(tmp_path / "pi0", "full"))
    check_like_pi0(_saved(tmp_path / "same", "full"), pi0)
    with pytest.raises(BadInputError, match="render_profile='fast' but pi0 on 'full'"):
        check_like_pi0(_saved(tmp_path / "other", "fast"), pi0)


def test_results_folder_holds_one_profile(tmp_path):
    ResultsStore(tmp_path, SUITE, "abc", render_profile="fast")
    ResultsStore(tmp_path, SUITE, "abc", render_profile="fast")  # the same again: fine
    with pytest.raises(BadInputError, match="render_profile='fast', not 'full'"):
        ResultsStore(tmp_path, SUITE, "abc")
