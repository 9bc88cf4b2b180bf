"""Capture and restore every random generator a run uses, so ``resume=true`` continues bit-for-bit."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from vla_razor.trainers.distributed import DistInfo


def capture_rng_state(
    generators: dict[str, torch.Generator] | None = None,
    numpy_generators: dict[str, np.random.Generator] | None = None,
) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
        "torch": torch.get_rng_state(),
        # CUDA's default generators (dropout and any sampling without an explicit generator on a GPU).
        "torch_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "torch_generators": {k: g.get_state() for k, g in (generators or {}).items()},
        "numpy_generators": {k: g.bit_generator.state for k, g in (numpy_generators or {}).items()},
    }


def restore_rng_state(
    state: dict[str, Any],
    generators: dict[str, torch.Generator] | None = None,
    numpy_generators: dict[str, np.random.Generator] | None = None,
) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy_global"])
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("torch_cuda")  # absent in checkpoints written before it was recorded
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            raise ValueError(
                f"checkpoint holds CUDA RNG states of {len(cuda_states)} devices but "
                f"{torch.cuda.device_count()} are visible; resume with the same CUDA_VISIBLE_DEVICES"
            )
        torch.cuda.set_rng_state_all(cuda_states)
    for key, gen in (generators or {}).items():
        if key in state["torch_generators"]:
            gen.set_state(state["torch_generators"][key])
    for key, gen in (numpy_generators or {}).items():
        if key in state["numpy_generators"]:
            gen.bit_generator.state = state["numpy_generators"][key]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RngStreams:
    """A trainer's own random streams, by name: the loop checkpoints and restores them with the global ones.

    The names are part of the checkpoint format (``trainer_state.pt`` keeps each stream under its name).
    """

    generators: dict[str, torch.Generator] = field(default_factory=dict)
    numpy_generators: dict[str, np.random.Generator] = field(default_factory=dict)

    def capture(self) -> dict[str, Any]:
        return capture_rng_state(self.generators, self.numpy_generators)

    def restore(self, state: dict[str, Any]) -> None:
        restore_rng_state(state, self.generators, self.numpy_generators)


def gather_rng_states(streams: RngStreams, dist_info: DistInfo) -> list[dict[str, Any]]:
    """RNG states of every rank (rank r restores entry r on resume); a collective under DDP."""
    mine = streams.capture()
    if not dist_info.enabled:
        return [mine]
    gathered: list[Any] = [None] * dist_info.world_size
    dist.all_gather_object(gathered, mine)
    return gathered
