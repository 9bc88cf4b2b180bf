"""Random generators for sampling action tokens.

``torch.multinomial`` draws on the device of the probabilities it samples from, and it only accepts a
generator of that same device type: a CPU generator makes every sampled rollout fail on a GPU
("Expected a 'cuda' device type for generator"). Every caller that samples from a policy therefore
builds its generator here, on the policy's device.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vla_razor.errors import BadInputError


def seeded_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (pass ``policy.device``), seeded with ``seed``.

    The same seed gives different streams on CPU and CUDA (different algorithms), so a run is
    reproducible on the same kind of device, not across kinds.
    """
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def check_generator_device(generator: torch.Generator | None, device: torch.device) -> None:
    """Fail with one clear line (instead of deep inside torch.multinomial) on a device mismatch."""
    if generator is not None and generator.device.type != device.type:
        raise BadInputError(
            f"sampling generator is on {generator.device.type!r} but the policy is on {device.type!r}; "
            "build it with vla_razor.sampling.seeded_generator(seed, policy.device)"
        )


def row_gumbel(generators: Sequence[torch.Generator], bins: int, device: torch.device) -> torch.Tensor:
    """Gumbel noise [B, bins], row i drawn on the CPU from ``generators[i]``, then moved to ``device``.

    ``argmax(logp + noise)`` samples each row from its own categorical (the Gumbel-max trick), so a row's
    draw depends on its own generator only, never on which rows share its batch or on the device.
    """
    uniform = torch.stack([torch.rand(bins, generator=g, dtype=torch.float64) for g in generators])
    # -log(-log u) with u kept inside (0, 1): rand can return exactly 0.
    uniform = uniform.clamp_(min=torch.finfo(torch.float64).tiny, max=1.0 - 2**-53)
    return (-torch.log(-torch.log(uniform))).to(device=device, dtype=torch.float32)


@dataclass(frozen=True)
class Sampling:
    """How a policy picks its actions while it plays: greedy (the most likely tokens), or sampled at
    ``temperature``, either from one ``generator`` for every batch (built with :func:`seeded_generator` on
    the policy's device), or, with ``episode_seed``, from one generator per episode.

    Per-episode generators make a sampled evaluation as reproducible as a greedy one: an episode's draws
    depend on (``episode_seed``, its task, its env seed) alone, not on which episodes share its batches,
    on the number of env workers, on a resume or a cluster backend, or on CPU vs GPU (the noise is drawn
    on the CPU). An episode played again (its worker died) draws the same numbers again.
    """

    greedy: bool = True
    temperature: float = 1.0
    generator: torch.Generator | None = None
    episode_seed: int | None = None

    def __post_init__(self) -> None:
        if self.episode_seed is not None and (self.greedy or self.generator is not None):
            raise ValueError("episode_seed draws per episode: it needs greedy=False and no shared generator")

    def episode_generator(self, task: str, seed: int) -> torch.Generator | None:
        """The generator of one episode (None unless ``episode_seed`` is set)."""
        if self.episode_seed is None:
            return None
        key = np.random.SeedSequence([int(self.episode_seed), int(seed), zlib.crc32(task.encode())])
        return torch.Generator().manual_seed(int(key.generate_state(1, dtype=np.uint64)[0]) >> 1)

    def act(self, policy: Any, batch: Any, rows: Sequence[torch.Generator] | None = None) -> Any:
        """``policy.act`` on ``batch`` with these settings; ``rows``: the per-episode generators of the
        batch's rows (with ``episode_seed``)."""
        if (rows is None) != (self.episode_seed is None):
            raise ValueError("per-episode sampling needs one generator per batch row, and only then")
        generator = self.generator if rows is None else list(rows)
        return policy.act(batch, greedy=self.greedy, temperature=self.temperature, generator=generator)


# Evaluation's default: the policy's most likely action, no randomness.
GREEDY = Sampling()
