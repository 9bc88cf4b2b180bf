"""Linear CKA against hand-checkable cases."""

from __future__ import annotations

import math

import pytest
import torch

from vla_razor.metrics.representation import linear_cka


def test_cka_is_one_under_rotation_scaling_and_translation() -> None:
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-12)


def test_cka_hand_computed_one_dimensional_case() -> None:
    # For 1-D features CKA is the squared Pearson correlation.
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)
    y = torch.tensor([[1.0], [3.0], [2.0], [5.0]], dtype=torch.float64)
    r = torch.corrcoef(torch.stack([x[:, 0], y[:, 0]]))[0, 1].item()
    assert linear_cka(x, y) == pytest.approx(r**2, abs=1e-12)


def test_cka_of_unrelated_features_is_small_and_bad_shapes_fail() -> None:
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    assert linear_cka(x, y) < 0.1
    assert math.isnan(linear_cka(torch.ones(5, 3), x[:5]))
    with pytest.raises(ValueError, match="same n inputs"):
        linear_cka(x, y[:10])
