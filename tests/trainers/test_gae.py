"""GAE against hand-computed values, including the truncation/termination distinction."""

from __future__ import annotations

import pytest
import torch

from vla_razor.trainers.gae import compute_gae


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def test_gae_matches_hand_computation_with_termination_and_truncation() -> None:
    gamma, lam = 0.9, 0.5
    # One env, 4 steps: episode A = steps 0-1 ends TERMINATED at step 1 (reward 1);
    # episode B = steps 2-3, TRUNCATED at step 3 with V(final obs) = 0.7.
    rewards = _t([[0.0], [1.0], [0.0], [0.0]])
    values = _t([[0.5], [0.6], [0.2], [0.3]])
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.tensor([[False], [False], [False], [True]])
    final_values = _t([[0.0], [0.0], [0.0], [0.7]])
    last_value = torch.tensor([9.9])  # obs after the last step belongs to a new episode: must be unused

    adv, ret = compute_gae(rewards, values, terminated, truncated, final_values, last_value, gamma, lam)

    # step 3 (truncated): delta = 0 + 0.9*0.7 - 0.3 = 0.33 ; A3 = 0.33
    # step 2: delta = 0 + 0.9*0.3 - 0.2 = 0.07 ; A2 = 0.07 + 0.9*0.5*0.33 = 0.2185
    # step 1 (terminated): delta = 1 - 0.6 = 0.4 ; A1 = 0.4 (no bootstrap, recursion cut)
    # step 0: delta = 0 + 0.9*0.6 - 0.5 = 0.04 ; A0 = 0.04 + 0.45*0.4 = 0.22
    expected = _t([[0.22], [0.4], [0.2185], [0.33]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_gae_bootstraps_from_last_value_when_episode_continues() -> None:
    rewards = _t([[0.0], [0.0]])
    values = _t([[0.1], [0.2]])
    no = torch.tensor([[False], [False]])
    adv, _ = compute_gae(rewards, values, no, no, torch.zeros(2, 1), torch.tensor([1.0]), 1.0, 1.0)
    # lambda = gamma = 1: A_t = V(last) - V(s_t)
    torch.testing.assert_close(adv, _t([[0.9], [0.8]]))


def test_truncation_differs_from_termination() -> None:
    rewards = _t([[0.0]])
    values = _t([[0.0]])
    final = _t([[1.0]])
    adv_trunc, _ = compute_gae(
        rewards, values, torch.tensor([[False]]), torch.tensor([[True]]), final, torch.zeros(1), 0.99, 0.95
    )
    adv_term, _ = compute_gae(
        rewards, values, torch.tensor([[True]]), torch.tensor([[False]]), final, torch.zeros(1), 0.99, 0.95
    )
    assert adv_trunc.item() == pytest.approx(0.99)
    assert adv_term.item() == 0.0


def test_gae_rejects_bad_gamma() -> None:
    z = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="gamma"):
        compute_gae(z, z, z.bool(), z.bool(), z, torch.zeros(1), 1.5, 0.9)
