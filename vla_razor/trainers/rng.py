"""Capture and restore every random generator a run uses, so ``resume=true`` continues bit-for-bit."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state(
    generators: dict[str, torch.Generator] | None = None,
    numpy_generators: dict[str, np.random.Generator] | None = None,
) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy_global": np.random.get_state(),
        "torch": torch.get_rng_state(),
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
