"""Distances between pi0 and pi on action-token distributions, measured on new-task observations.

The joint distribution over 7 action tokens has 256^7 outcomes, so the sequence KL is computed by the
chain rule: KL(p0 || p) = E_{a ~ p0} [ sum_t KL(p0(.|x, a_<t) || p(.|x, a_<t)) ]. Each per-token KL is
exact (256 bins); the only randomness is the sampled prefix a_<t, so the estimate is unbiased and
averaging ``num_prefix_samples`` draws reduces its variance. Reverse KL uses prefixes from pi. TV and
L2 are per-token distances averaged over the 7 tokens, on the same pi0 prefixes as the forward KL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Protocol

import torch
import torch.nn.functional as F


class ScoresActions(Protocol):
    """What the estimator needs from a policy (VLAPolicy satisfies it; tests use a fake)."""

    def act(
        self, batch: Any, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Any: ...

    def score(self, batch: Any, token_ids: torch.Tensor, *, temperature: float = 1.0) -> Any: ...

    def reference(self) -> Any: ...


def per_token_divergences(logits0: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exact divergences between per-token categorical distributions, logits [..., n_bins] -> [...]."""
    logp0 = F.log_softmax(logits0.double(), dim=-1)
    logp = F.log_softmax(logits.double(), dim=-1)
    p0, p = logp0.exp(), logp.exp()
    return {
        "forward_kl": (p0 * (logp0 - logp)).sum(-1),
        "reverse_kl": (p * (logp - logp0)).sum(-1),
        "tv": 0.5 * (p0 - p).abs().sum(-1),
        "l2": (p0 - p).norm(dim=-1),
    }


@torch.no_grad()
def action_token_divergences(
    pi0: ScoresActions,
    pi: ScoresActions,
    batch: Any,
    *,
    num_prefix_samples: int = 1,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Per-state forward_kl = KL(pi0||pi), reverse_kl = KL(pi||pi0), tv, l2 (each [B], float64).

    ``pi0 is pi`` means "compare pi with its own reference": pi0's numbers are then computed inside
    ``pi.reference()`` (adapters disabled, or the frozen copy), with no second model in memory.
    """
    if num_prefix_samples < 1:
        raise ValueError(f"num_prefix_samples={num_prefix_samples} must be >= 1")
    same = pi0 is pi

    @contextmanager
    def as_pi0() -> Iterator[None]:
        with pi.reference() if same else nullcontext():
            yield

    totals: dict[str, torch.Tensor] = {}

    def add(name: str, value: torch.Tensor) -> None:
        totals[name] = totals.get(name, 0) + value.detach().cpu() / num_prefix_samples

    for _ in range(num_prefix_samples):
        with as_pi0():
            prefix0 = pi0.act(batch, temperature=temperature, generator=generator).token_ids
            logits00 = pi0.score(batch, prefix0, temperature=temperature).logits
        logits10 = pi.score(batch, prefix0, temperature=temperature).logits
        d = per_token_divergences(logits00, logits10)
        add("forward_kl", d["forward_kl"].sum(-1))
        add("tv", d["tv"].mean(-1))
        add("l2", d["l2"].mean(-1))

        prefix1 = pi.act(batch, temperature=temperature, generator=generator).token_ids
        logits11 = pi.score(batch, prefix1, temperature=temperature).logits
        with as_pi0():
            logits01 = pi0.score(batch, prefix1, temperature=temperature).logits
        add("reverse_kl", per_token_divergences(logits01, logits11)["reverse_kl"].sum(-1))
    return totals
