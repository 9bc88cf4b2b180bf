"""The tiny VLA as a transformers model: Auto* registration, tokenizer layout, prefix insertion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForVision2Seq, LlamaForCausalLM

from tests.policies.helpers import INSTRUCTIONS, make_obs, make_policy
from vla_razor.policies.tiny import OPENVLA_PROMPT_TEMPLATE, TinyVLAConfig, TinyVLAForActionPrediction
from vla_razor.policies.tiny.processing_tiny_vla import build_tokenizer


def test_default_size_is_a_few_million_parameters() -> None:
    from vla_razor.policies import build_policy

    policy = build_policy({"family": "tiny"})  # the built-in default size
    n = policy.num_parameters()
    assert 1_000_000 < n < 10_000_000, n
    assert isinstance(policy.model.language_model, LlamaForCausalLM)


def test_tokenizer_last_256_ids_are_action_bins_and_prompt_words_known() -> None:
    tok = build_tokenizer(["wipe the whiteboard"])
    vocab = tok.get_vocab()
    assert [vocab[t] for t in ("<unk>", "<s>", "</s>", "<pad>")] == [0, 1, 2, 3]
    assert vocab["<act_000>"] == len(tok) - 256 and vocab["<act_255>"] == len(tok) - 1
    prompt = OPENVLA_PROMPT_TEMPLATE.format(instruction="wipe the whiteboard")
    ids = tok(prompt)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["in", ":", "what"]


def test_auto_classes_roundtrip(tmp_path: Path) -> None:
    model = make_policy().model
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TinyVLAConfig)
    for auto in (AutoModel, AutoModelForVision2Seq):
        loaded = auto.from_pretrained(tmp_path)
        assert isinstance(loaded, TinyVLAForActionPrediction)
        for (n, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
            assert torch.equal(a, b), n


def test_forward_inserts_vision_prefix_after_bos() -> None:
    policy = make_policy(use_proprio=True, image_keys=["agentview_image", "robot0_eye_in_hand_image"])
    obs = make_obs(2, keys=("agentview_image", "robot0_eye_in_hand_image"))
    batch = policy.prepare(obs, INSTRUCTIONS[:2])
    model = policy.model
    n_vis = model.config.num_vision_tokens
    assert n_vis == 2 * 4 + 1  # two cameras x 2x2 grid + proprio token
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        pixel_values=batch.pixel_values,
        proprio=batch.proprio,
    )
    assert out.logits.shape == (2, batch.input_ids.shape[1] + n_vis, model.config.text_config.vocab_size)
    # The policy's own path must see the same last-position distribution as the HF forward.
    embeds, mask = policy._embed_prefix(model, batch)
    assert embeds.shape[1] == out.logits.shape[1] and torch.equal(
        mask[:, 1 : 1 + n_vis], torch.ones(2, n_vis).long()
    )


def test_camera_and_proprio_are_used() -> None:
    policy = make_policy(use_proprio=True)
    obs = make_obs(1)
    b1 = policy.prepare(obs, INSTRUCTIONS[:1])
    obs2 = dict(obs, proprio=obs["proprio"] + 1.0)
    b2 = policy.prepare(obs2, INSTRUCTIONS[:1])
    ids = policy.act(b1, greedy=True).token_ids
    assert not torch.allclose(policy.score(b1, ids).logits, policy.score(b2, ids).logits)
    with pytest.raises(ValueError, match="proprio"):
        policy.prepare({"agentview_image": obs["agentview_image"]}, INSTRUCTIONS[:1])
