"""Per-episode sampling: each batch row draws from its own generator (Gumbel-max), so a sampled episode's
actions do not depend on which episodes share its batch; the draws follow the policy's distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.policies.helpers import INSTRUCTIONS, make_obs
from vla_razor.policies import VLAPolicy
from vla_razor.sampling import Sampling, row_gumbel


def _rows(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_gumbel_max_draws_follow_the_softmax() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -3.0])
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [(logits + row_gumbel([generator], 5, logits.device)[0]).argmax() for _ in range(20000)]
    )
    freq = torch.bincount(draws, minlength=5).double() / len(draws)
    # Binomial SE at 20000 draws is <= 0.0036; 0.015 is 4 SE: a wrong sampler (e.g. argmax, or uniform) is far off.
    torch.testing.assert_close(freq, logits.double().softmax(-1), atol=0.015, rtol=0)


def test_a_row_draws_the_same_tokens_whatever_shares_its_batch(lora_policy: VLAPolicy) -> None:
    obs = make_obs(3)
    together = lora_policy.act(lora_policy.prepare(obs, INSTRUCTIONS), generator=_rows(7, 8, 9))
    alone = lora_policy.act(
        lora_policy.prepare({k: v[1:2] for k, v in obs.items()}, INSTRUCTIONS[1:2]), generator=_rows(8)
    )
    assert torch.equal(together.token_ids[1], alone.token_ids[0])
    torch.testing.assert_close(together.log_prob[1], alone.log_prob[0], atol=1e-5, rtol=0)
    # The log-prob it reports is the sampled tokens' log-prob under the policy.
    scored = lora_policy.score(lora_policy.prepare(obs, INSTRUCTIONS), together.token_ids)
    torch.testing.assert_close(scored.log_prob, together.log_prob, atol=1e-4, rtol=0)


def test_rows_with_other_seeds_draw_other_tokens(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(3), INSTRUCTIONS)
    draws = {tuple(lora_policy.act(batch, generator=_rows(s, s, s)).token_ids[0].tolist()) for s in range(6)}
    assert len(draws) > 1  # the LoRA-perturbed policy is not deterministic at temperature 1


def test_row_generators_must_match_the_batch(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(3), INSTRUCTIONS)
    with pytest.raises(ValueError, match="2 row generators for a batch of 3"):
        lora_policy.act(batch, generator=_rows(1, 2))


def test_episode_generators_depend_on_seed_task_and_episode() -> None:
    sampling = Sampling(greedy=False, episode_seed=100000)
    draw = lambda g: torch.rand(4, generator=g)  # noqa: E731
    assert torch.equal(
        draw(sampling.episode_generator("lift", 3)), draw(sampling.episode_generator("lift", 3))
    )
    assert not torch.equal(
        draw(sampling.episode_generator("lift", 3)), draw(sampling.episode_generator("lift", 4))
    )
    assert not torch.equal(
        draw(sampling.episode_generator("lift", 3)), draw(sampling.episode_generator("door", 3))
    )
    other = Sampling(greedy=False, episode_seed=1)
    assert not torch.equal(
        draw(sampling.episode_generator("lift", 3)), draw(other.episode_generator("lift", 3))
    )
    assert Sampling().episode_generator("lift", 3) is None
    with pytest.raises(ValueError, match="episode_seed"):
        Sampling(greedy=True, episode_seed=1)
    assert np.isfinite(row_gumbel(_rows(0), 256, torch.device("cpu"))).all()
