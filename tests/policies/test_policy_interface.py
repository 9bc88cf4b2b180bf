"""act / score / value / reference behaviour of the shared policy interface (tiny VLA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.policies.helpers import INSTRUCTIONS, make_obs, make_policy
from vla_razor.policies import PolicyBatch, VLAPolicy


def _count_decoder_calls(policy: VLAPolicy) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    lengths: list[int] = []
    decoder = policy.model.language_model.get_decoder()

    def hook(_m: torch.nn.Module, _args: tuple, kwargs: dict) -> None:
        lengths.append(int(kwargs["inputs_embeds"].shape[1]))

    return lengths, decoder.register_forward_pre_hook(hook, with_kwargs=True)


def test_act_shapes_and_action_range(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(3), INSTRUCTIONS)
    out = lora_policy.act(batch, generator=torch.Generator().manual_seed(0))
    tok = lora_policy.action_tokenizer
    assert out.token_ids.shape == (3, 7) and out.token_ids.dtype == torch.long
    assert bool(tok.is_action_id(out.token_ids).all())
    assert out.actions.shape == (3, 7) and out.actions.dtype == np.float32
    np.testing.assert_allclose(out.actions, lora_policy.decode_actions(out.token_ids))
    assert out.log_prob.shape == (3,) and out.value.shape == (3,)
    assert bool((out.log_prob < 0).all())


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_act_log_prob_equals_score(lora_policy: VLAPolicy, temperature: float) -> None:
    batch = lora_policy.prepare(make_obs(3), INSTRUCTIONS)
    out = lora_policy.act(batch, temperature=temperature, generator=torch.Generator().manual_seed(1))
    sc = lora_policy.score(batch, out.token_ids, temperature=temperature)
    torch.testing.assert_close(sc.log_prob, out.log_prob, atol=1e-4, rtol=0)
    torch.testing.assert_close(sc.value, out.value, atol=1e-5, rtol=0)
    torch.testing.assert_close(lora_policy.value(batch), out.value, atol=1e-5, rtol=0)
    assert sc.logits.shape == (3, 7, 256) and sc.token_log_probs.shape == (3, 7)
    probs = sc.logits.softmax(-1)
    torch.testing.assert_close(sc.entropy, -(probs * probs.log()).sum((-1, -2)), atol=1e-4, rtol=0)


def test_greedy_is_argmax_of_score_logits(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(2), INSTRUCTIONS[:2])
    out = lora_policy.act(batch, greedy=True)
    sc = lora_policy.score(batch, out.token_ids)
    slots = lora_policy.action_tokenizer.ids_to_bin_slots(out.token_ids)
    assert torch.equal(sc.logits.argmax(-1), slots)


def test_kv_cache_one_prompt_pass_then_single_tokens(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(2), INSTRUCTIONS[:2])
    lengths, handle = _count_decoder_calls(lora_policy)
    try:
        out = lora_policy.act(batch)
        prompt_len = lengths[0]
        assert lengths == [prompt_len] + [1] * 6 and prompt_len > 10
        lengths.clear()
        lora_policy.score(batch, out.token_ids)
        assert lengths == [prompt_len + 6]  # one teacher-forced pass over prompt + 6 action tokens
    finally:
        handle.remove()


def test_padding_does_not_change_results(lora_policy: VLAPolicy) -> None:
    obs = make_obs(3)
    batch = lora_policy.prepare(obs, INSTRUCTIONS)  # prompts of different lengths -> left padding
    assert int(batch.attention_mask.sum(1).min()) < batch.attention_mask.shape[1]
    ids = lora_policy.act(batch, greedy=True).token_ids
    full = lora_policy.score(batch, ids)
    for i in range(3):
        single = lora_policy.prepare({k: v[i : i + 1] for k, v in obs.items()}, INSTRUCTIONS[i : i + 1])
        alone = lora_policy.score(single, ids[i : i + 1])
        torch.testing.assert_close(alone.logits[0], full.logits[i], atol=2e-5, rtol=0)
        assert torch.equal(lora_policy.act(single, greedy=True).token_ids[0], ids[i])


def test_batch_indexing_and_cat_repads(lora_policy: VLAPolicy) -> None:
    obs = make_obs(3)
    a = lora_policy.prepare({k: v[:1] for k, v in obs.items()}, INSTRUCTIONS[:1])
    b = lora_policy.prepare({k: v[1:] for k, v in obs.items()}, INSTRUCTIONS[1:])
    assert a.input_ids.shape[1] != b.input_ids.shape[1]
    joined = PolicyBatch.cat([a, b])
    ref = lora_policy.prepare(obs, INSTRUCTIONS)
    assert torch.equal(joined.input_ids, ref.input_ids) and torch.equal(
        joined.attention_mask, ref.attention_mask
    )
    ids = lora_policy.act(ref, greedy=True).token_ids
    torch.testing.assert_close(
        lora_policy.score(joined[[2, 0]], ids[[2, 0]]).logits,
        lora_policy.score(ref, ids).logits[[2, 0]],
        atol=2e-5,
        rtol=0,
    )
    assert len(ref[1]) == 1


def test_score_gradients_reach_lora_and_value_head_only(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(2), INSTRUCTIONS[:2])
    ids = lora_policy.act(batch).token_ids
    lora_policy.zero_grad()
    sc = lora_policy.score(batch, ids)
    (sc.log_prob.sum() + sc.value.sum()).backward()
    trainable = {n for n, p in lora_policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert any(n.startswith("value_head.") for n in trainable)
    assert all(p.grad is not None for n, p in lora_policy.named_parameters() if p.requires_grad)
    lora_policy.zero_grad()


def test_lora_reference_is_the_base_network(lora_policy: VLAPolicy) -> None:
    batch = lora_policy.prepare(make_obs(2), INSTRUCTIONS[:2])
    ids = lora_policy.act(batch, greedy=True).token_ids
    with lora_policy.reference():
        ref = lora_policy.score(batch, ids).logits
    pi = lora_policy.score(batch, ids).logits
    assert (ref - pi).abs().max() > 1e-3  # adapters are non-zero: pi0 differs
    base = make_policy(finetune="frozen")  # same seed -> same base weights as the LoRA policy's
    torch.testing.assert_close(base.score(batch, ids).logits, ref, atol=1e-5, rtol=0)


def test_full_finetune_reference_is_frozen_copy() -> None:
    policy = make_policy(finetune="full")
    batch = policy.prepare(make_obs(2), INSTRUCTIONS[:2])
    ids = policy.act(batch, greedy=True).token_ids
    before = policy.score(batch, ids).logits.detach()
    with torch.no_grad():
        for p in policy.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    with policy.reference():
        torch.testing.assert_close(policy.score(batch, ids).logits, before, atol=1e-6, rtol=0)
    assert (policy.score(batch, ids).logits - before).abs().max() > 1e-3
    assert all(not p.requires_grad for p in policy.reference_model.parameters())


def test_bad_inputs_fail_in_one_line() -> None:
    policy = make_policy()
    obs = make_obs(2)
    with pytest.raises(ValueError, match=r"'agentview_image' has shape \(2, 16, 16, 3\)"):
        policy.prepare({"agentview_image": obs["agentview_image"][:, :16, :16]}, INSTRUCTIONS[:2])
    with pytest.raises(ValueError, match="dtype float32"):
        policy.prepare({"agentview_image": obs["agentview_image"].astype(np.float32)}, INSTRUCTIONS[:2])
    with pytest.raises(ValueError, match="lacks image key 'agentview_image'"):
        policy.prepare({"wrist": obs["agentview_image"]}, INSTRUCTIONS[:2])
    with pytest.raises(ValueError, match="'zorblax quux' has only words unknown"):
        policy.prepare(obs, ["zorblax quux", "open the door"])
    with pytest.raises(ValueError, match="list of strings"):
        policy.prepare(obs, "open the door")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="LoRA target module 'qkv_proj' does not exist.*q_proj"):
        make_policy(finetune="lora", lora={"target_modules": ["qkv_proj"]})
    with pytest.raises(ValueError, match="finetune='partial'"):
        make_policy(finetune="partial")
    with pytest.raises(ValueError, match="token id 3 is not an action id"):
        policy.score(policy.prepare(obs, INSTRUCTIONS[:2]), torch.full((2, 7), 3))
    for line in str(pytest.raises(ValueError, policy.prepare, obs, ["zorblax"]).value).splitlines()[1:]:
        raise AssertionError(f"multi-line error: {line}")
