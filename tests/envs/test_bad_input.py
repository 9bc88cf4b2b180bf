"""Bad input gives one-line ValueErrors naming the bad value and what is valid."""

from __future__ import annotations

import numpy as np
import pytest

from vla_razor import envs


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown task 'pick_place_banana'.*pick_place_can"):
        envs.make_env("pick_place_banana")
    with pytest.raises(ValueError, match="unknown task"):
        envs.make_expert("nope")
    with pytest.raises(ValueError, match="unknown task"):
        envs.make_vector_env("nope", 2)


def test_unknown_camera_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown camera 'topview'.*agentview"):
        envs.make_env("lift", cameras=("topview",), image_size=16)
    with pytest.raises(ValueError, match=r"unknown camera 'nowhere'"):
        envs.make_env("lift", use_camera=False, render_camera="nowhere")


def test_bad_actions(can_env):
    can_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(6,\).*expected \(7,\)"):
        can_env.step(np.zeros(6))
    bad = np.zeros(7)
    bad[2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        can_env.step(bad)
    # the episode is still usable after a rejected action
    can_env.step(np.zeros(7))


def test_bad_options():
    with pytest.raises(ValueError, match="unknown reward 'dense'"):
        envs.make_env("lift", reward="dense")
    with pytest.raises(ValueError, match="unknown placement key 'z_range'"):
        envs.make_env("lift", use_camera=False, placement={"z_range": (0, 1)})
    with pytest.raises(ValueError, match="low <= high"):
        envs.make_env("lift", use_camera=False, placement={"x_range": (0.1, -0.1)})
    with pytest.raises(ValueError, match="state has shape"):
        envs.make_env("lift", use_camera=False).unwrapped.reset_to(np.zeros(3))
