"""PolicyBatch: the tensors one forward pass needs, built by ``policy.prepare``.

Layout of ``input_ids`` (shared by every family): column 0 is ``<s>``, then left padding, then the
prompt tokens. The vision prefix is inserted right after column 0 (OpenVLA's insertion point) and
positions are counted over real tokens only, so a padded row computes exactly what the unpadded
sequence would, and every row's first action token lands in the same (last+1) column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch


@dataclass
class PolicyBatch:
    input_ids: torch.Tensor  # long [B, T]
    attention_mask: torch.Tensor  # long [B, T]
    pixel_values: torch.Tensor  # tiny: uint8 [B, 3*cams, H, W]; openvla: float [B, 6, 224, 224]
    proprio: torch.Tensor | None = None  # float32 [B, P]
    pad_token_id: int = 0

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def to(self, device: torch.device | str) -> PolicyBatch:
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            pixel_values=self.pixel_values.to(device),
            proprio=None if self.proprio is None else self.proprio.to(device),
        )

    def __getitem__(self, idx: int | slice | torch.Tensor | Sequence[int]) -> PolicyBatch:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)  # keep the batch dimension
        elif not isinstance(idx, slice):
            idx = torch.as_tensor(idx, dtype=torch.long, device=self.input_ids.device)
        return replace(
            self,
            input_ids=self.input_ids[idx],
            attention_mask=self.attention_mask[idx],
            pixel_values=self.pixel_values[idx],
            proprio=None if self.proprio is None else self.proprio[idx],
        )

    def _left_pad_to(self, width: int) -> PolicyBatch:
        extra = width - self.input_ids.shape[1]
        if extra == 0:
            return self
        b = len(self)
        pad_ids = self.input_ids.new_full((b, extra), self.pad_token_id)
        pad_mask = self.attention_mask.new_zeros((b, extra))
        # Padding goes after <s> (column 0), where every other pad already is.
        ids = torch.cat([self.input_ids[:, :1], pad_ids, self.input_ids[:, 1:]], dim=1)
        mask = torch.cat([self.attention_mask[:, :1], pad_mask, self.attention_mask[:, 1:]], dim=1)
        return replace(self, input_ids=ids, attention_mask=mask)

    @staticmethod
    def cat(batches: Sequence[PolicyBatch]) -> PolicyBatch:
        """Concatenate along the batch, re-padding prompts of different lengths."""
        if not batches:
            raise ValueError("PolicyBatch.cat needs at least one batch")
        if len({b.proprio is None for b in batches}) != 1:
            raise ValueError("PolicyBatch.cat: some batches have proprio and some do not")
        width = max(b.input_ids.shape[1] for b in batches)
        padded = [b._left_pad_to(width) for b in batches]
        return PolicyBatch(
            input_ids=torch.cat([b.input_ids for b in padded]),
            attention_mask=torch.cat([b.attention_mask for b in padded]),
            pixel_values=torch.cat([b.pixel_values for b in padded]),
            proprio=None if padded[0].proprio is None else torch.cat([b.proprio for b in padded]),  # type: ignore[misc]
            pad_token_id=batches[0].pad_token_id,
        )


def left_pad_prompts(
    token_lists: Sequence[Sequence[int]], bos_id: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lists of prompt ids WITHOUT <s> -> ([<s>, pads, ids] ids, mask) tensors."""
    width = max(len(t) for t in token_lists)
    b = len(token_lists)
    ids = torch.full((b, width + 1), pad_id, dtype=torch.long)
    mask = torch.zeros((b, width + 1), dtype=torch.long)
    ids[:, 0] = bos_id
    mask[:, 0] = 1
    for row, toks in enumerate(token_lists):
        if toks:
            ids[row, width + 1 - len(toks) :] = torch.as_tensor(list(toks), dtype=torch.long)
            mask[row, width + 1 - len(toks) :] = 1
    return ids, mask
