"""Metrics on policies: divergences between pi0 and pi on action-token distributions, weight distances."""

from vla_razor.metrics.divergences import (
    action_token_divergences,
    per_token_divergences,
    trainable_state,
    weight_l2_distance,
)

__all__ = ["action_token_divergences", "per_token_divergences", "trainable_state", "weight_l2_distance"]
