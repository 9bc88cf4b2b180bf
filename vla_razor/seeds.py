"""How the seed space is split between training and held-out evaluation.

Training rollouts and demos draw their episode seeds below :data:`HELDOUT_SEED_START`; the held-out
suite evaluates from it upwards, so no training episode ever replays a held-out one.
"""

from __future__ import annotations

HELDOUT_SEED_START = 100_000
