"""OpenVLA's action tokenizer: 256 uniform bins over [-1, 1] mapped onto the LAST 256 vocabulary ids.

Encoding: clip to [-1, 1], ``np.digitize`` against ``linspace(-1, 1, 256)`` (index 1..256),
token id = ``vocab_size - index``. Decoding: ``clip(vocab_size - id - 1, 0, 254)`` indexes the 255 bin
centers. Both ends of that mapping are kept bit-for-bit so that checkpoints trained with OpenVLA decode
identically here.

"Bin slots" are the column indices 0..255 of the action-id slice of the logits
(``logits[..., vocab_size - 256 : vocab_size]``); slot = id - (vocab_size - 256).
"""

from __future__ import annotations

import warnings
from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class ActionTokenizer:
    def __init__(self, vocab_size: int, n_bins: int = 256, action_dim: int = 7) -> None:
        if n_bins < 2 or vocab_size < n_bins:
            raise ValueError(f"ActionTokenizer needs vocab_size ({vocab_size}) >= n_bins ({n_bins}) >= 2")
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.action_dim = int(action_dim)
        self.bins = np.linspace(-1.0, 1.0, self.n_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0
        self._warned_clip = False

    @property
    def first_action_id(self) -> int:
        """Smallest action token id; the action logit slice is ``[first_action_id, vocab_size)``."""
        return self.vocab_size - self.n_bins

    @property
    def action_slice(self) -> slice:
        return slice(self.first_action_id, self.vocab_size)

    def encode(self, norm_actions: np.ndarray) -> np.ndarray:
        """Normalised actions [..., action_dim] -> int64 token ids of the same shape."""
        arr = np.asarray(norm_actions, dtype=np.float64)
        if arr.shape[-1:] != (self.action_dim,):
            raise ValueError(f"encode expects [..., {self.action_dim}] actions, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("encode: actions contain NaN or inf")
        if (np.any(arr < -1.0) or np.any(arr > 1.0)) and not self._warned_clip:
            # Once per tokenizer: out-of-range values are expected now and then (q01/q99 cut 2% of data).
            warnings.warn(
                f"ActionTokenizer.encode: normalised actions outside [-1, 1] (min {arr.min():.3f}, "
                f"max {arr.max():.3f}) are clipped; further clipping is silent",
                stacklevel=2,
            )
            self._warned_clip = True
        arr = np.clip(arr, -1.0, 1.0)
        idx = np.digitize(arr, self.bins)  # 1..n_bins
        return (self.vocab_size - idx).astype(np.int64)

    def decode(self, ids: ArrayT) -> ArrayT:
        """Token ids -> normalised actions at the bin centers (numpy in, numpy out; torch in, torch out)."""
        if isinstance(ids, torch.Tensor):
            centers = torch.as_tensor(self.bin_centers, dtype=torch.float32, device=ids.device)
            index = torch.clamp(self.vocab_size - ids.long() - 1, 0, self.n_bins - 2)
            return centers[index]
        arr = np.asarray(ids, dtype=np.int64)
        index = np.clip(self.vocab_size - arr - 1, 0, self.n_bins - 2)
        return self.bin_centers[index].astype(np.float32)

    def is_action_id(self, ids: ArrayT) -> ArrayT:
        return (ids >= self.first_action_id) & (ids < self.vocab_size)

    def ids_to_bin_slots(self, ids: ArrayT) -> ArrayT:
        """Vocabulary ids -> column in the [.., n_bins] action-logit slice; rejects non-action ids."""
        ok = self.is_action_id(ids)
        if not bool(ok.all()):
            bad = ids[~ok].reshape(-1)[0]
            raise ValueError(
                f"token id {int(bad)} is not an action id; valid ids are "
                f"{self.first_action_id}..{self.vocab_size - 1}"
            )
        return ids - self.first_action_id

    def bin_slots_to_ids(self, slots: ArrayT) -> ArrayT:
        ok = (slots >= 0) & (slots < self.n_bins)
        if not bool(ok.all()):
            bad = slots[~ok].reshape(-1)[0]
            raise ValueError(f"bin slot {int(bad)} outside [0, {self.n_bins})")
        return slots + self.first_action_id
