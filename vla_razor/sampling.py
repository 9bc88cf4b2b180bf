"""Random generators for sampling action tokens.

``torch.multinomial`` draws on the device of the probabilities it samples from, and it only accepts a
generator of that same device type: a CPU generator makes every sampled rollout fail on a GPU
("Expected a 'cuda' device type for generator"). Every caller that samples from a policy therefore
builds its generator here, on the policy's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Sampling:
    """How a policy picks its actions while it plays: greedy (the most likely tokens), or sampled at
    ``temperature`` from ``generator`` (built with :func:`seeded_generator` on the policy's device)."""

    greedy: bool = True
    temperature: float = 1.0
    generator: torch.Generator | None = None

    def act(self, policy: Any, batch: Any) -> Any:
        """``policy.act`` on ``batch`` with these settings."""
        return policy.act(batch, greedy=self.greedy, temperature=self.temperature, generator=self.generator)


# Evaluation's default: the policy's most likely action, no randomness.
GREEDY = Sampling()
