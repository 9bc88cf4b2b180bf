"""Action normalisation statistics, OpenVLA's convention (BOUNDS_Q99).

Each action dimension where ``mask`` is true is mapped from [q01, q99] to [-1, 1] (and clipped); the
gripper (mask false) is left raw because it is already in [-1, 1] and must stay binary-looking. The
statistics travel inside every saved policy so that evaluation never needs an ``unnorm_key``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_razor.errors import BadInputError

# Avoids a division by zero for dimensions that never move in the data (q99 == q01).
_EPS = 1e-8


@dataclass(frozen=True)
class ActionNormStats:
    """Per-dimension 1st/99th percentiles plus the mask of dimensions that are normalised."""

    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        q01 = np.asarray(self.q01, dtype=np.float64).reshape(-1)
        q99 = np.asarray(self.q99, dtype=np.float64).reshape(-1)
        mask = np.asarray(self.mask, dtype=bool).reshape(-1)
        if not (q01.shape == q99.shape == mask.shape):
            raise BadInputError(
                f"ActionNormStats: q01 {q01.shape}, q99 {q99.shape} and mask {mask.shape} must have one length"
            )
        if np.any(q99 < q01):
            bad = int(np.argmax(q99 < q01))
            raise BadInputError(f"ActionNormStats: q99 < q01 in dimension {bad} ({q99[bad]} < {q01[bad]})")
        object.__setattr__(self, "q01", q01)
        object.__setattr__(self, "q99", q99)
        object.__setattr__(self, "mask", mask)

    @property
    def action_dim(self) -> int:
        return int(self.q01.shape[0])

    @classmethod
    def identity(cls, action_dim: int = 7) -> ActionNormStats:
        """Stats that map [-1, 1] onto itself: the right default for env actions already in [-1, 1]."""
        mask = np.ones(action_dim, dtype=bool)
        mask[-1] = False
        return cls(-np.ones(action_dim), np.ones(action_dim), mask)

    @classmethod
    def from_actions(
        cls, actions: np.ndarray, mask: Sequence[bool] | np.ndarray | None = None
    ) -> ActionNormStats:
        """Percentile stats of ``actions`` [N, D]; by default every dimension but the last (gripper)."""
        arr = np.asarray(actions, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise BadInputError(f"from_actions expects a non-empty [N, D] array, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise BadInputError("from_actions: actions contain NaN or inf")
        if mask is None:
            mask = np.ones(arr.shape[1], dtype=bool)
            mask[-1] = False
        q01, q99 = np.quantile(arr, [0.01, 0.99], axis=0)
        return cls(q01, q99, np.asarray(mask, dtype=bool))

    def _check(self, arr: np.ndarray) -> None:
        if arr.shape[-1] != self.action_dim:
            raise ValueError(
                f"action last dimension {arr.shape[-1]} != norm stats dimension {self.action_dim}"
            )

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Env-scale actions -> [-1, 1] (masked dims clipped, as OpenVLA's data pipeline does)."""
        arr = np.asarray(actions, dtype=np.float64)
        self._check(arr)
        scaled = 2.0 * (arr - self.q01) / (self.q99 - self.q01 + _EPS) - 1.0
        out = np.where(self.mask, np.clip(scaled, -1.0, 1.0), arr)
        return out.astype(np.float32)

    def unnormalize(self, norm_actions: np.ndarray) -> np.ndarray:
        """[-1, 1] -> env scale: ``0.5 * (a + 1) * (q99 - q01) + q01`` where mask, raw elsewhere."""
        arr = np.asarray(norm_actions, dtype=np.float64)
        self._check(arr)
        out = np.where(self.mask, 0.5 * (arr + 1.0) * (self.q99 - self.q01) + self.q01, arr)
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, list[float] | list[bool]]:
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist(), "mask": self.mask.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionNormStats:
        """Accepts our flat dict or one OpenVLA ``norm_stats[key]`` entry (``{"action": {...}}``)."""
        if "action" in data and isinstance(data["action"], Mapping):
            data = data["action"]
        missing = [k for k in ("q01", "q99") if k not in data]
        if missing:
            raise BadInputError(f"norm stats dict lacks {missing}; keys present: {sorted(data)}")
        q01 = np.asarray(data["q01"], dtype=np.float64)
        mask = data.get("mask")
        if mask is None:
            # OpenVLA treats a missing mask as "normalise everything".
            mask = np.ones_like(q01, dtype=bool)
        return cls(q01, np.asarray(data["q99"], dtype=np.float64), np.asarray(mask, dtype=bool))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActionNormStats):
            return NotImplemented
        return (
            np.array_equal(self.q01, other.q01)
            and np.array_equal(self.q99, other.q99)
            and np.array_equal(self.mask, other.mask)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside: not hashable
