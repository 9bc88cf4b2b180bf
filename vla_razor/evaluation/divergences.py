"""How far pi moved from pi0, measured on the states cached from pi0's own rollouts.

On the new task's states: forward KL(pi0 || pi), reverse KL, TV and L2 on action-token distributions,
each with its standard error clustered by the episode the states came from, and representation drift
(1 - linear CKA of the hidden state at the action position). On each prior task's states: forward KL,
the old-task drift that new-task KL may miss. And the L2 distance of pi's effective weights from pi0's.
The estimators themselves live in ``vla_razor.metrics``; this module only feeds them the cached states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_razor.evaluation.stats import clustered_mean
from vla_razor.evaluation.suite_spec import SuiteSpec
from vla_razor.metrics import action_token_divergences, linear_cka, merged_weights, weight_l2_distance
from vla_razor.sampling import seeded_generator

DIVERGENCES = ("forward_kl", "reverse_kl", "tv", "l2")


@torch.no_grad()
def measure_divergences(
    pi0: Any,
    pi: Any,
    states: dict[str, Any],
    *,
    batch_size: int = 64,
    prefix_samples: int = 1,
    seed: int = 0,
    keys: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Mean divergences of pi from pi0 over the cached states, each with its standard error clustered by
    the episode the states came from (``<key>_sem``).

    ``pi0 is pi`` compares pi with its own reference (``pi.reference()``: adapters off, or the frozen
    copy), as in-training evaluation does. ``keys`` picks divergences (None: all, in the estimator's order).
    """
    n = len(states["instructions"])
    per: dict[str, list[torch.Tensor]] = {}
    generator = seeded_generator(seed, pi0.device)
    pi0.eval()
    pi.eval()
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        obs = {k: v[start:stop] for k, v in states["obs"].items()}
        batch = pi.prepare(obs, states["instructions"][start:stop])
        values = action_token_divergences(
            pi0, pi, batch, num_prefix_samples=prefix_samples, generator=generator
        )
        for key, per_state in values.items():
            per.setdefault(key, []).append(per_state.double().cpu())
    episodes = np.asarray(states["episodes"])
    out: dict[str, float] = {}
    for key in per if keys is None else keys:
        summary = clustered_mean(torch.cat(per[key]).numpy(), episodes)
        out[key] = summary.mean
        out[f"{key}_sem"] = summary.se
    return out


@torch.no_grad()
def representation_cka(pi0: Any, pi: Any, states: dict[str, Any], batch_size: int = 64) -> float:
    """Linear CKA between pi0's and pi's hidden state at the action position over the cached states."""
    n = len(states["instructions"])
    feats0, feats = [], []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        obs = {k: v[start:stop] for k, v in states["obs"].items()}
        batch = pi.prepare(obs, states["instructions"][start:stop])
        feats0.append(pi0.action_features(batch).double().cpu())
        feats.append(pi.action_features(batch).double().cpu())
    return linear_cka(torch.cat(feats0), torch.cat(feats))


def suite_divergences(
    pi0: Any | None, policy: Any, kl_states: dict[str, dict[str, Any]], suite: SuiteSpec
) -> dict[str, Any]:
    """Divergences from pi0 on the new task's cached states, forward KL on each prior task's, and
    representation drift; pi0 itself (``pi0`` None) gets zeros."""
    new = kl_states[suite.new_task]
    priors = [t for t in suite.prior_tasks if t in kl_states]
    if pi0 is None:
        out: dict[str, Any] = {k: 0.0 for k in (*DIVERGENCES, "representation_drift")}
        out |= {f"{k}_sem": 0.0 for k in DIVERGENCES}
        out["prior_forward_kl"] = out["prior_forward_kl_sem"] = 0.0
        out["prior_forward_kl_per_task"] = {t: 0.0 for t in priors}
    else:
        out = measure_divergences(pi0, policy, new, keys=DIVERGENCES)
        per_task = {t: measure_divergences(pi0, policy, kl_states[t], keys=("forward_kl",)) for t in priors}
        if per_task:
            k = len(per_task)
            out["prior_forward_kl"] = float(np.mean([d["forward_kl"] for d in per_task.values()]))
            # Different tasks' states come from different episodes: their means are independent.
            out["prior_forward_kl_sem"] = float(
                np.sqrt(np.sum([d["forward_kl_sem"] ** 2 for d in per_task.values()])) / k
            )
            out["prior_forward_kl_per_task"] = {t: d["forward_kl"] for t, d in per_task.items()}
        out["representation_drift"] = 1.0 - representation_cka(pi0, policy, new)
    out["kl_states"] = float(len(new["instructions"]))
    out["kl_episodes"] = float(len(set(new["episodes"])))
    return out


def distances_from_pi0(
    pi0: Any | None,
    policy: Any,
    suite: SuiteSpec,
    kl_states: dict[str, dict[str, Any]] | None,
    pi0_weights: dict[str, torch.Tensor] | None,
) -> dict[str, Any]:
    """A policy record's ``divergence`` (when the suite caches KL states) and ``weight_l2_from_pi0``.

    ``pi0_weights`` is ``merged_weights(pi0)``, taken once for every checkpoint; pi0 itself (``pi0``
    None) is at distance zero.
    """
    out: dict[str, Any] = {}
    if kl_states is not None:
        out["divergence"] = suite_divergences(pi0, policy, kl_states, suite)
    if pi0 is None:
        out["weight_l2_from_pi0"] = 0.0
    else:
        assert pi0_weights is not None  # taken from pi0 once, before its first checkpoint
        out["weight_l2_from_pi0"] = weight_l2_distance(pi0_weights, merged_weights(policy))
    return out
