"""How ``VLAPolicy.act`` runs the decoder: one prompt pass, then one pass per further action token.

Three modes, one result (the same greedy tokens, log-probs equal to float rounding):
- ``eager``: transformers' growing ``DynamicCache``; every step is a fresh set of kernel launches and a
  key/value concatenation (the reference, and the default);
- ``static``: a preallocated ``transformers.StaticCache`` sized for the prompt plus the action tokens,
  kept between calls of the same shape, so no step allocates or copies the cache;
- ``compiled``: ``static`` with the one-token step under ``torch.compile`` (on CUDA with
  ``mode="reduce-overhead"``: the step replays as a CUDA graph, which removes the launch overhead that
  bounds a batch-1 decode of a 7B model). The prompt pass stays eager: its length changes with the
  instructions, and it runs once per call.

The static cache's length is the prompt's rounded up to ``LENGTH_STEP``, so batches whose prompts differ by
a few tokens share one cache (and one compiled graph). Slots past the current position are never attended
to: the causal mask follows ``cache_position``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from transformers import StaticCache

from vla_razor.errors import BadInputError

DECODE_MODES = ("eager", "static", "compiled")
# Static cache lengths are multiples of this (fewer distinct shapes: fewer caches and recompilations).
LENGTH_STEP = 32
# Static caches (and compiled steps) kept per policy; the least recently used is dropped beyond it.
MAX_CACHES = 4


def check_decode_mode(mode: str) -> str:
    if mode not in DECODE_MODES:
        raise BadInputError(f"decode={mode!r} is not one of {', '.join(DECODE_MODES)}")
    return mode


class DecodeRun(ABC):
    """One call's decoding state: ``prefill`` the prompt, then ``step`` one token at a time."""

    @abstractmethod
    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings [B, L, D], mask [B, L] and positions [B, L] -> last hidden state [B, D]."""

    @abstractmethod
    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The next token's embeddings [B, 1, D] at positions [B, 1] -> its hidden state [B, D]."""


class EagerRun(DecodeRun):
    def __init__(self, decoder: nn.Module) -> None:
        self.decoder = decoder
        self.cache: Any = None
        self.attn: torch.Tensor | None = None

    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # No mask at all when nothing is padded lets SDPA take its causal fast path.
        self.attn = None if bool(mask.all()) else mask
        out = self.decoder(
            inputs_embeds=embeds, attention_mask=self.attn, position_ids=positions, use_cache=True
        )
        self.cache = out.past_key_values
        return out.last_hidden_state[:, -1]

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if self.attn is not None:
            self.attn = torch.cat([self.attn, self.attn.new_ones((len(embeds), 1))], dim=1)
        out = self.decoder(
            inputs_embeds=embeds,
            attention_mask=self.attn,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        return out.last_hidden_state[:, -1]


class StaticRun(DecodeRun):
    """Decoding into a preallocated cache; ``step_fn`` is the decoder itself or its compiled twin."""

    def __init__(self, decoders: StaticDecoders, decoder: nn.Module, new_tokens: int) -> None:
        self.decoders = decoders
        self.decoder = decoder
        self.new_tokens = new_tokens
        self.cache: StaticCache | None = None
        self.step_fn: Any = decoder
        self.mask: torch.Tensor | None = None
        self.position = 0

    def prefill(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        batch, length = mask.shape
        size = -(-(length + self.new_tokens) // LENGTH_STEP) * LENGTH_STEP
        self.cache, self.step_fn = self.decoders.get(self.decoder, batch, size, embeds.dtype, embeds.device)
        # One mask of the cache's full length for every pass: the slots after the prompt are real tokens
        # (or unused), and the causal rule on cache_position hides each one until it is written.
        self.mask = torch.cat([mask, mask.new_ones((batch, size - length))], dim=1)
        self.position = length
        out = self.decoder(
            inputs_embeds=embeds,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            cache_position=torch.arange(length, device=embeds.device),
            use_cache=True,
        )
        return out.last_hidden_state[:, -1]

    def step(self, embeds: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        if embeds.device.type == "cuda" and self.step_fn is not self.decoder:
            # A new CUDA-graph replay begins: the previous step's outputs were already read.
            torch.compiler.cudagraph_mark_step_begin()
        out = self.step_fn(
            inputs_embeds=embeds,
            attention_mask=self.mask,
            position_ids=positions,
            past_key_values=self.cache,
            cache_position=torch.tensor([self.position], device=embeds.device),
            use_cache=True,
        )
        self.position += 1
        # A CUDA graph's output buffer is overwritten by its next replay: keep a copy.
        return out.last_hidden_state[:, -1].clone()


class StaticDecoders:
    """The static caches (and compiled one-token steps) of one policy, reused across ``act`` calls."""

    def __init__(self, mode: str) -> None:
        self.mode = check_decode_mode(mode)
        self._caches: OrderedDict[tuple[Any, ...], StaticCache] = OrderedDict()
        self._compiled: dict[int, nn.Module] = {}

    def run(self, decoder: nn.Module, new_tokens: int) -> DecodeRun:
        if self.mode == "eager":
            return EagerRun(decoder)
        return StaticRun(self, decoder, new_tokens)

    def get(
        self, decoder: nn.Module, batch: int, length: int, dtype: torch.dtype, device: torch.device
    ) -> tuple[StaticCache, Any]:
        key = (id(decoder), batch, length, dtype, str(device))
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = StaticCache(config=decoder.config, max_cache_len=length)
        else:
            cache.reset()
        self._caches[key] = cache
        while len(self._caches) > MAX_CACHES:
            self._caches.popitem(last=False)
        return cache, self._step_fn(decoder, device)

    def _step_fn(self, decoder: nn.Module, device: torch.device) -> Any:
        if self.mode != "compiled":
            return decoder
        compiled = self._compiled.get(id(decoder))
        if compiled is None:
            # CUDA graphs need a CUDA device; elsewhere inductor's fused kernels are what compile gives.
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            compiled = torch.compile(decoder, mode=mode, dynamic=False, fullgraph=False)
            self._compiled[id(decoder)] = compiled
        return compiled

    def __deepcopy__(self, memo: dict[int, Any]) -> StaticDecoders:
        # A copied policy has other modules: it builds its own caches and compiled steps.
        return StaticDecoders(self.mode)

    def clear(self) -> None:
        """Drop every cache and compiled step (e.g. before a training update needs the memory)."""
        self._caches.clear()
        self._compiled.clear()
