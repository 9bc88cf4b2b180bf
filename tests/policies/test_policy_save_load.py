"""save_pretrained / load_policy / merge_and_export round trips and the checkpoint errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.policies.helpers import INSTRUCTIONS, make_obs, make_policy
from vla_razor.config import asset_path
from vla_razor.data.normalization import ActionNormStats
from vla_razor.errors import BadInputError
from vla_razor.policies import VLAPolicy, build_policy, load_policy
from vla_razor.policies.tiny import TinyPolicyConfig


def _logits(policy: VLAPolicy, ids: torch.Tensor, obs: dict) -> torch.Tensor:
    with torch.no_grad():
        return policy.score(policy.prepare(obs, INSTRUCTIONS), ids).logits


def test_lora_roundtrip_keeps_pi_pi0_stats_and_value(lora_policy: VLAPolicy, tmp_path: Path) -> None:
    stats = ActionNormStats.from_actions(np.random.default_rng(0).normal(0, 0.3, size=(200, 7)))
    lora_policy.norm_stats = stats
    obs = make_obs(3)
    out = lora_policy.act(lora_policy.prepare(obs, INSTRUCTIONS), greedy=True)
    lora_policy.save_pretrained(tmp_path)

    record = json.loads((tmp_path / "policy_config.json").read_text())
    assert record["family"] == "tiny" and record["finetune"] == "lora" and record["lora"]["r"] == 4
    assert ActionNormStats.from_dict(record["norm_stats"]) == stats
    assert record["image_keys"] == ["agentview_image"] and record["image_size"] == 32
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)  # adapter weights alone
    base = load_file(tmp_path / "base" / "model.safetensors")
    assert not any("lora_" in k or "base_layer" in k for k in base)

    loaded = load_policy(tmp_path)
    assert loaded.finetune == "lora" and loaded.norm_stats == stats
    torch.testing.assert_close(_logits(loaded, out.token_ids, obs), _logits(lora_policy, out.token_ids, obs))
    with loaded.reference(), lora_policy.reference():
        torch.testing.assert_close(
            _logits(loaded, out.token_ids, obs), _logits(lora_policy, out.token_ids, obs)
        )
    again = loaded.act(loaded.prepare(obs, INSTRUCTIONS), greedy=True)
    assert torch.equal(again.token_ids, out.token_ids)
    np.testing.assert_array_equal(again.actions, out.actions)
    torch.testing.assert_close(again.value, out.value)


def test_merge_and_export_equals_lora_policy(lora_policy: VLAPolicy, tmp_path: Path) -> None:
    obs = make_obs(3)
    ids = lora_policy.act(lora_policy.prepare(obs, INSTRUCTIONS), greedy=True).token_ids
    before = _logits(lora_policy, ids, obs)
    lora_policy.merge_and_export(tmp_path)
    merged = load_policy(tmp_path)
    assert merged.finetune == "frozen" and not (tmp_path / "adapter").exists()
    torch.testing.assert_close(_logits(merged, ids, obs), before, atol=1e-4, rtol=0)
    torch.testing.assert_close(_logits(lora_policy, ids, obs), before)  # unmerged again afterwards
    with pytest.raises(ValueError, match="needs a LoRA policy"):
        merged.merge_and_export(tmp_path / "again")


def test_full_finetune_roundtrip_and_mode_switch(tmp_path: Path) -> None:
    policy = make_policy(finetune="full")
    with torch.no_grad():
        next(policy.backbone.parameters()).add_(0.1)
    obs = make_obs(3)
    ids = policy.act(policy.prepare(obs, INSTRUCTIONS), greedy=True).token_ids
    policy.save_pretrained(tmp_path)
    as_lora = build_policy({"pretrained": str(tmp_path), "finetune": "lora", "lora": {"r": 2}})
    assert as_lora.finetune == "lora" and as_lora.settings.lora is not None and as_lora.settings.lora.r == 2
    # A fresh adapter (B = 0) is the identity: pi equals the saved weights, which are its pi0.
    torch.testing.assert_close(_logits(as_lora, ids, obs), _logits(policy, ids, obs), atol=1e-5, rtol=0)


def test_not_a_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match="not a vla-razor policy checkpoint: .*nowhere.* does not exist"
    ):
        load_policy(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty' has no policy_config.json"):
        load_policy(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown policy family 'gpt'"):
        build_policy({"family": "gpt"})
    with pytest.raises(BadInputError, match=r"unknown tiny policy key\(s\) hiden_size; valid: .*hidden_size"):
        make_policy(hiden_size=3)


def test_saved_policy_rejects_architecture_keys_it_would_ignore(tmp_path: Path) -> None:
    make_policy().save_pretrained(tmp_path)
    with pytest.raises(BadInputError, match=r"hidden_size have no effect .*valid with pretrained: family"):
        build_policy({"family": "tiny", "pretrained": str(tmp_path), "hidden_size": 256})
    # The family's own defaults (what hydra's schema fills in) and the load keys are fine.
    policy = build_policy(
        {"family": "tiny", "pretrained": str(tmp_path), "vision_grid": 3, "finetune": "frozen"}
    )
    assert policy.finetune == "frozen"


def test_committed_pi0_has_the_typed_default_architecture() -> None:
    # One source of truth: a fresh tiny VLA is built with exactly the committed pi0's architecture.
    pi0 = load_policy(asset_path("pi0_tiny"), finetune="frozen")
    fresh = build_policy({"family": "tiny"})
    for policy in (pi0, fresh):
        config = policy.model.config
        assert (config.vision_grid, config.text_config.hidden_size, config.text_config.num_hidden_layers) == (
            3,
            192,
            3,
        )
    assert pi0.settings.image_keys == fresh.settings.image_keys == TinyPolicyConfig().image_keys
    assert pi0.num_parameters() == fresh.num_parameters()
