"""The accelerated decodes (static KV cache, torch.compile) give what the eager decode gives, in fp32 on
the CPU: the same greedy tokens, the same sampled tokens under the same generator, the same log-probs and
values to float rounding. (The GPU half, bf16 on OpenVLA-7B's shape, is in benchmarks/gpu_scale.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.policies.helpers import INSTRUCTIONS, make_obs, make_policy
from vla_razor.errors import BadInputError
from vla_razor.policies import VLAPolicy, build_policy, load_policy
from vla_razor.policies.decoding import LENGTH_STEP
from vla_razor.policies.mini_openvla.build import build_mini_openvla
from vla_razor.policies.openvla import OpenVLAPolicy, set_language_model_attention

STATS = {"q01": [-1.0] * 7, "q99": [1.0] * 7, "mask": [True] * 6 + [False]}


def _randomise_lora(policy: VLAPolicy) -> VLAPolicy:
    # Non-zero adapters: a fresh LoRA (B = 0) would make pi equal pi0 and hide a decode that skips them.
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    return policy


def tiny_lora() -> tuple[VLAPolicy, dict, list[str]]:
    policy = _randomise_lora(make_policy(finetune="lora", lora={"r": 4, "alpha": 8}))
    # Prompts of three lengths: the batch is left-padded, so the masks are exercised.
    return policy, make_obs(6), [INSTRUCTIONS[i % 3] for i in range(6)]


def mini_openvla() -> tuple[VLAPolicy, dict, list[str]]:
    model, processor = build_mini_openvla(norm_stats={"fake": {"action": STATS}})
    set_language_model_attention(model, "sdpa")
    policy = OpenVLAPolicy.from_model(
        model, processor, {"model": "mini", "lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"}}
    )
    rng = np.random.default_rng(0)
    obs = {"agentview_image": rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)}
    return _randomise_lora(policy), obs, ["pick up the can", "open the door", "pick up the can", "lift"]


BUILDERS = {"tiny": tiny_lora, "mini_openvla": mini_openvla}


def assert_same_decode(policy: VLAPolicy, obs: dict, instructions: list[str], mode: str) -> None:
    batch = policy.prepare(obs, instructions)
    policy.set_decode("eager")
    greedy = policy.act(batch, greedy=True)
    sampled = policy.act(batch, generator=torch.Generator().manual_seed(3))
    policy.set_decode(mode)
    for _ in range(2):  # the second call reuses the static cache: a stale cache would show here
        fast = policy.act(batch, greedy=True)
        fast_sampled = policy.act(batch, generator=torch.Generator().manual_seed(3))
        assert torch.equal(fast.token_ids, greedy.token_ids)
        assert torch.equal(fast_sampled.token_ids, sampled.token_ids)
        torch.testing.assert_close(fast.log_prob, greedy.log_prob, rtol=0, atol=1e-4)
        torch.testing.assert_close(fast_sampled.log_prob, sampled.log_prob, rtol=0, atol=1e-4)
        torch.testing.assert_close(fast.value, greedy.value, rtol=0, atol=1e-5)
    # pi0 (adapters off) through the same static cache.
    with policy.reference():
        ref_fast = policy.act(batch, greedy=True)
        policy.set_decode("eager")
        ref = policy.act(batch, greedy=True)
    assert torch.equal(ref_fast.token_ids, ref.token_ids)
    torch.testing.assert_close(ref_fast.log_prob, ref.log_prob, rtol=0, atol=1e-4)
    assert not torch.equal(ref.token_ids, greedy.token_ids), "adapters had no effect: the check is blind"


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_static_cache_decode_matches_eager(family: str) -> None:
    policy, obs, instructions = BUILDERS[family]()
    assert_same_decode(policy, obs, instructions, "static")


@pytest.mark.slow  # torch.compile of the one-token step: about half a minute per model on 2 CPU cores
@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_compiled_decode_matches_eager(family: str) -> None:
    policy, obs, instructions = BUILDERS[family]()
    assert_same_decode(policy, obs, instructions, "compiled")


def test_static_caches_are_reused_per_shape() -> None:
    policy, obs, instructions = tiny_lora()
    policy.set_decode("static")
    batch = policy.prepare(obs, instructions)
    policy.act(batch, greedy=True)
    policy.act(batch, greedy=True)
    caches = policy._decoders._caches
    assert len(caches) == 1
    (key,) = caches
    assert key[1] == 6 and key[2] % LENGTH_STEP == 0 and key[2] >= batch.input_ids.shape[1] + 6
    policy.act(batch[torch.arange(2)], greedy=True)  # another batch size: its own cache
    assert len(caches) == 2


def test_decode_setting_is_validated_and_survives_loading(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"decode='fast' is not one of eager, static, compiled"):
        make_policy(decode="fast")
    policy = make_policy(decode="static")
    assert policy.settings.decode == "static"
    policy.save_pretrained(tmp_path / "p")
    assert load_policy(tmp_path / "p").settings.decode == "static"
    assert load_policy(tmp_path / "p", decode="eager").settings.decode == "eager"
    loaded = build_policy({"family": "tiny", "pretrained": str(tmp_path / "p"), "decode": "static"})
    assert loaded.settings.decode == "static"
    with pytest.raises(BadInputError, match="decode='jit'"):
        load_policy(tmp_path / "p", decode="jit")


def test_merged_adapter_decodes_as_unmerged_and_restores_weights() -> None:
    policy, obs, instructions = tiny_lora()
    batch = policy.prepare(obs, instructions)
    before = {k: v.clone() for k, v in policy.backbone.state_dict().items() if "base_layer" in k}
    unmerged = policy.act(batch, greedy=True)
    with policy.merged_adapter():
        merged = policy.act(batch, greedy=True)
        changed = [
            k
            for k, v in policy.backbone.state_dict().items()
            if k in before and not torch.equal(v, before[k])
        ]
        assert changed, "merging changed no weight"
    assert torch.equal(merged.token_ids, unmerged.token_ids)
    torch.testing.assert_close(merged.log_prob, unmerged.log_prob, rtol=0, atol=1e-4)
    for k, v in policy.backbone.state_dict().items():
        if k in before:
            torch.testing.assert_close(v, before[k], rtol=0, atol=1e-6)
    with policy.reference(), pytest.raises(BadInputError, match="inside reference"), policy.merged_adapter():
        pass
