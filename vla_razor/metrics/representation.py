"""Representation drift between pi0 and pi: linear CKA of their features on the same observations.

Linear centred kernel alignment (Kornblith et al., 2019) between feature matrices X [n, p] and Y [n, q]
of the same n inputs, with columns centred:

    CKA(X, Y) = ||Yᵀ X||_F² / (||Xᵀ X||_F · ||Yᵀ Y||_F)

It is 1 when Y is an orthogonal transform and rescaling of X, and it is invariant to both, so a
fine-tune that only rotates the hidden space counts as no drift. The study reports drift = 1 - CKA of the
hidden state at the action position (``VLAPolicy.action_features``) over the cached new-task states.
"""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA in [0, 1] between features ``x`` [n, p] and ``y`` [n, q] of the same n inputs."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"CKA needs [n, p] and [n, q] features of the same n inputs, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] < 2:
        raise ValueError("CKA needs at least 2 inputs")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    # The n x n Gram form costs O(n^2 (p + q)) and stays exact when p, q >> n (OpenVLA's 4096-wide states).
    kx, ky = x @ x.T, y @ y.T
    cross = (kx * ky).sum()
    norm = kx.norm() * ky.norm()
    if float(norm) == 0.0:
        return float("nan")  # a constant representation has no geometry to compare
    return float(cross / norm)
