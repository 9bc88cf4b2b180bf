"""Metrics on policies: divergences between pi0 and pi on action-token distributions, weight distances, representation drift."""

from vla_razor.metrics.divergences import action_token_divergences, per_token_divergences
from vla_razor.metrics.representation import linear_cka
from vla_razor.metrics.weights import merged_weights, trainable_state, weight_l2_distance

__all__ = [
    "action_token_divergences",
    "linear_cka",
    "merged_weights",
    "per_token_divergences",
    "trainable_state",
    "weight_l2_distance",
]
