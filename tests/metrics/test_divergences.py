"""Divergence estimators against brute-force enumeration, and on the tiny VLA."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from vla_razor.metrics import (
    action_token_divergences,
    per_token_divergences,
    trainable_state,
    weight_l2_distance,
)
from vla_razor.policies import build_policy
from vla_razor.policies.lora import base_state_dict

K, BINS, STATES = 3, 4, 2


@dataclass
class _Out:
    token_ids: torch.Tensor
    logits: torch.Tensor | None = None


class FakeAR:
    """Autoregressive model over K tokens with BINS values: logits looked up from (state, prefix).

    Holds pi and pi0 tables; inside ``reference()`` it is pi0, like a LoRA policy with adapters off.
    """

    def __init__(self, seed: int, ref_seed: int | None = None) -> None:
        def table(s: int) -> list[torch.Tensor]:
            g = torch.Generator().manual_seed(s)
            return [
                2 * torch.randn((STATES,) + (BINS,) * t + (BINS,), generator=g, dtype=torch.float64)
                for t in range(K)
            ]

        self.tables = table(seed)
        self.ref_tables = table(ref_seed) if ref_seed is not None else self.tables
        self._ref = False

    @contextmanager
    def reference(self) -> Iterator[FakeAR]:
        self._ref = True
        try:
            yield self
        finally:
            self._ref = False

    def _logits(self, states: torch.Tensor, prefix: torch.Tensor, t: int) -> torch.Tensor:
        tab = (self.ref_tables if self._ref else self.tables)[t]
        return tab[(states,) + tuple(prefix[:, i] for i in range(t))]

    def act(
        self, batch: torch.Tensor, *, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> _Out:
        tokens = torch.zeros((len(batch), K), dtype=torch.long)
        for t in range(K):
            probs = (self._logits(batch, tokens, t) / temperature).softmax(-1)
            tokens[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return _Out(tokens)

    def score(self, batch: torch.Tensor, token_ids: torch.Tensor, *, temperature: float = 1.0) -> _Out:
        logits = torch.stack([self._logits(batch, token_ids, t) for t in range(K)], dim=1) / temperature
        return _Out(token_ids, logits)

    def seq_log_prob(self, state: int, seq: tuple[int, ...]) -> float:
        s = torch.tensor([state])
        lp = self.score(s, torch.tensor([seq])).logits.log_softmax(-1)[0]
        return float(sum(lp[t, seq[t]] for t in range(K)))


def _exact_kls(model: FakeAR, state: int) -> tuple[float, float]:
    fwd = rev = 0.0
    for seq in itertools.product(range(BINS), repeat=K):
        lp = model.seq_log_prob(state, seq)
        with model.reference():
            lp0 = model.seq_log_prob(state, seq)
        fwd += np.exp(lp0) * (lp0 - lp)
        rev += np.exp(lp) * (lp - lp0)
    return fwd, rev


def test_estimator_expectation_equals_enumerated_sequence_kl() -> None:
    model = FakeAR(seed=0, ref_seed=1)
    seqs = torch.tensor(list(itertools.product(range(BINS), repeat=K)))
    for state in range(STATES):
        states = torch.full((len(seqs),), state)
        with model.reference():
            logits0 = model.score(states, seqs).logits
            weights0 = torch.tensor([np.exp(model.seq_log_prob(state, tuple(s.tolist()))) for s in seqs])
        logits = model.score(states, seqs).logits
        weights = torch.tensor([np.exp(model.seq_log_prob(state, tuple(s.tolist()))) for s in seqs])
        d = per_token_divergences(logits0, logits)
        # Expectation over pi0 prefixes of the chain-rule sum: every full sequence weighted by its pi0 prob.
        fwd_est = float((weights0 * d["forward_kl"].sum(-1)).sum())
        rev_est = float((weights * d["reverse_kl"].sum(-1)).sum())
        fwd, rev = _exact_kls(model, state)
        assert fwd > 0.1 and rev > 0.1
        assert fwd_est == pytest.approx(fwd, rel=1e-9)
        assert rev_est == pytest.approx(rev, rel=1e-9)


def test_monte_carlo_estimate_converges_and_pi0_vs_itself_is_zero() -> None:
    model = FakeAR(seed=3, ref_seed=4)
    n = 4000
    batch = torch.tensor([0] * n + [1] * n)
    d = action_token_divergences(model, model, batch, generator=torch.Generator().manual_seed(0))
    for state in range(STATES):
        fwd, rev = _exact_kls(model, state)
        for name, exact in (("forward_kl", fwd), ("reverse_kl", rev)):
            vals = d[name][state * n : (state + 1) * n]
            err = float(vals.std()) / np.sqrt(n)
            assert abs(float(vals.mean()) - exact) < 4 * err + 1e-9, (name, state)
    same = FakeAR(seed=3)  # pi0 tables == pi tables
    z = action_token_divergences(same, same, batch[:50], num_prefix_samples=3)
    for name in ("forward_kl", "reverse_kl", "tv", "l2"):
        assert torch.equal(z[name], torch.zeros(50, dtype=torch.float64)), name


def test_per_token_tv_and_l2_hand_computed() -> None:
    p0 = torch.tensor([0.5, 0.5, 0.0 + 1e-30, 0.0 + 1e-30]).log()
    p = torch.tensor([0.25, 0.25, 0.25, 0.25]).log()
    d = per_token_divergences(p0, p)
    assert float(d["tv"]) == pytest.approx(0.5)
    assert float(d["l2"]) == pytest.approx(0.5)
    assert float(d["forward_kl"]) == pytest.approx(np.log(2))


SMALL = {
    "image_keys": ["agentview_image"],
    "use_proprio": False,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "vision_channels": [16, 32],
    "vision_grid": 2,
    "image_size": 32,
}


def _batch(policy):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    obs = {"agentview_image": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
    return policy.prepare(obs, ["pick up the can", "open the door", "lift the cube", "stack the blocks"])


def test_tiny_vla_reference_vs_separate_pi0_and_weight_distance() -> None:
    pi = build_policy({**SMALL, "finetune": "lora", "lora": {"r": 4}})
    pi0 = build_policy({**SMALL, "finetune": "frozen"})  # same seed: same base weights
    batch = _batch(pi)
    zero = action_token_divergences(pi, pi, batch)
    assert all(torch.equal(v, torch.zeros(4, dtype=torch.float64)) for v in zero.values())
    assert weight_l2_distance(None, pi) == 0.0
    with torch.no_grad():
        for name, p in pi.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    via_ref = action_token_divergences(pi, pi, batch, generator=torch.Generator().manual_seed(5))
    via_copy = action_token_divergences(pi0, pi, batch, generator=torch.Generator().manual_seed(5))
    assert bool((via_ref["forward_kl"] > 1e-3).all())
    for name in via_ref:
        torch.testing.assert_close(via_ref[name], via_copy[name], atol=1e-4, rtol=1e-3)
    # LoRA weight distance = Frobenius norm of the merged-minus-base weights.
    before = {k: v.clone() for k, v in base_state_dict(pi.model).items()}
    pi.backbone.merge_adapter()
    after = base_state_dict(pi.model)
    expected = float(sum((after[k].double() - before[k].double()).pow(2).sum() for k in before) ** 0.5)
    pi.backbone.unmerge_adapter()
    assert weight_l2_distance(None, pi) == pytest.approx(expected, rel=1e-4)


def test_weight_l2_distance_full_finetune_snapshot() -> None:
    pi = build_policy({**SMALL, "finetune": "full"})
    snap = trainable_state(pi)
    assert weight_l2_distance(snap, pi) == 0.0
    param = pi.model.language_model.lm_head.weight
    with torch.no_grad():
        param[0, :4] += torch.tensor([3.0, 0.0, 4.0, 0.0])
    assert weight_l2_distance(snap, pi) == pytest.approx(5.0, rel=1e-5)
    with pytest.raises(ValueError, match="pi0_state lacks trainable weight"):
        weight_l2_distance({}, pi)
    with pytest.raises(ValueError, match="needs a LoRA policy"):
        weight_l2_distance(None, pi)
