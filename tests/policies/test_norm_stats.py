"""ActionNormStats: OpenVLA's q01/q99 normalisation, gripper left raw, dict round trip."""

from __future__ import annotations

import numpy as np
import pytest

from vla_razor.data.normalization import ActionNormStats


def test_from_actions_and_unnormalize_formula() -> None:
    rng = np.random.default_rng(0)
    acts = rng.uniform(-0.5, 0.3, size=(5000, 7))
    acts[:, -1] = rng.choice([-1.0, 1.0], size=5000)
    stats = ActionNormStats.from_actions(acts)
    np.testing.assert_allclose(stats.q01, np.quantile(acts, 0.01, axis=0))
    assert stats.mask.tolist() == [True] * 6 + [False]
    a = np.array([[-1.0, 1.0, 0.0, 0.5, -0.5, 0.2, 1.0]])
    expected = 0.5 * (a + 1) * (stats.q99 - stats.q01) + stats.q01
    expected[0, -1] = 1.0  # gripper raw
    np.testing.assert_allclose(stats.unnormalize(a), expected, rtol=1e-6)


def test_normalize_inverts_inside_range_and_clips_outside() -> None:
    stats = ActionNormStats(q01=[0.0] * 7, q99=[2.0] * 7, mask=[True] * 6 + [False])
    a = np.array([[1.0, 0.5, 2.0, 0.0, 5.0, -3.0, 0.7]])
    norm = stats.normalize(a)
    np.testing.assert_allclose(norm, [[0.0, -0.5, 1.0, -1.0, 1.0, -1.0, 0.7]], atol=1e-6)
    np.testing.assert_allclose(stats.unnormalize(norm)[0, :4], a[0, :4], atol=1e-6)


def test_dict_roundtrip_and_openvla_nested_form() -> None:
    stats = ActionNormStats.from_actions(np.random.default_rng(1).normal(size=(100, 7)))
    assert ActionNormStats.from_dict(stats.to_dict()) == stats
    nested = {"action": {"q01": stats.q01.tolist(), "q99": stats.q99.tolist(), "mask": stats.mask.tolist()}}
    assert ActionNormStats.from_dict(nested) == stats
    with pytest.raises(ValueError, match="q99"):
        ActionNormStats.from_dict({"q01": [0.0]})


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="q99 < q01"):
        ActionNormStats([1.0], [0.0], [True])
    with pytest.raises(ValueError, match="last dimension 3"):
        ActionNormStats.identity(7).unnormalize(np.zeros((1, 3)))
