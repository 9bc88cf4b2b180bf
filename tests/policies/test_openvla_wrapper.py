"""The OpenVLA wrapper on a mini checkpoint in OpenVLA's format (remote code via auto_map, no 15 GB)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vla_razor.data.normalization import ActionNormStats
from vla_razor.policies import VLAPolicy, build_policy, load_policy
from vla_razor.policies.mini_openvla.build import build_mini_openvla_checkpoint

STATS = {
    "q01": [-0.2, -0.3, -0.1, -0.5, -0.5, -0.5, -1.0],
    "q99": [0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 1.0],
    "mask": [True] * 6 + [False],
}
INSTR = ["Pick up the can", "lift the red cube and place it in the bin", "open the door"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mini_openvla_ckpt") / "mini_openvla_ckpt"
    return build_mini_openvla_checkpoint(path, norm_stats={"robosuite_can": {"action": STATS}})


@pytest.fixture(scope="module")
def policy(ckpt: Path) -> VLAPolicy:
    p = build_policy(
        {
            "family": "openvla",
            "model": str(ckpt),
            "dtype": "float32",
            "device": "cpu",
            "lora": {"r": 4, "alpha": 8, "target_modules": "all-linear"},
        }
    )
    with torch.no_grad():
        for name, param in p.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    return p


def _obs(b: int, size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"agentview_image": rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)}


def test_checkpoint_is_in_openvla_format(ckpt: Path) -> None:
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["auto_map"]["AutoModelForVision2Seq"].startswith("modeling_mini_openvla.")
    assert (ckpt / "modeling_mini_openvla.py").exists() and cfg["text_config"]["vocab_size"] == 32064


def test_prompt_ids_and_action_vocab(policy: VLAPolicy) -> None:
    batch = policy.prepare(_obs(3), INSTR)
    tok = policy.tokenizer
    row = batch.input_ids[0][batch.attention_mask[0].bool()].tolist()
    words = tok.convert_ids_to_tokens(row)
    assert words[0] == "<s>" and words[1:4] == ["in", ":", "what"]
    assert words[-4:] == ["?", "out", ":", "▁"] and row[-1] == 29871  # OpenVLA's empty token appended
    assert "pick" in words and "Pick" not in words  # lower-cased instruction
    assert batch.pixel_values.shape == (3, 6, 224, 224)  # 64x64 robosuite image resized to 224
    assert batch.input_ids[:, 0].eq(tok.bos_token_id).all()
    assert policy.action_tokenizer.first_action_id == 31744 and policy.action_tokenizer.vocab_size == 32000


def _reference_greedy(policy: VLAPolicy, obs: dict, instr: str) -> tuple[list[int], torch.Tensor]:
    """Batch-1 OpenVLA semantics through the checkpoint's own forward (no cache, no padding)."""
    model = policy.model
    proc = policy.processor
    from PIL import Image

    img = Image.fromarray(obs["agentview_image"][0]).resize((224, 224), Image.Resampling.LANCZOS)
    inputs = proc(f"In: What action should the robot take to {instr.lower()}?\nOut:", img)
    ids = torch.cat([inputs["input_ids"], torch.tensor([[29871]])], dim=1)
    chosen, first_logits = [], None
    with torch.no_grad():
        for _ in range(7):
            out = model(
                input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=inputs["pixel_values"]
            )
            assert out.logits.shape[-1] == 32064
            logits = out.logits[0, -1, 31744:32000]
            first_logits = logits if first_logits is None else first_logits
            nxt = 31744 + int(logits.argmax())
            chosen.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return chosen, first_logits


def test_batched_act_matches_single_sample_forward(policy: VLAPolicy) -> None:
    obs = _obs(3)
    batch = policy.prepare(obs, INSTR)
    assert int(batch.attention_mask.sum(1).min()) < batch.attention_mask.shape[1]  # padding present
    out = policy.act(batch, greedy=True)
    score = policy.score(batch, out.token_ids)
    for i, instr in enumerate(INSTR):
        single = {k: v[i : i + 1] for k, v in obs.items()}
        ids, first_logits = _reference_greedy(policy, single, instr)
        assert out.token_ids[i].tolist() == ids
        torch.testing.assert_close(score.logits[i, 0], first_logits, atol=1e-4, rtol=0)


def test_actions_unnormalised_with_checkpoint_stats(policy: VLAPolicy) -> None:
    assert policy.norm_stats == ActionNormStats.from_dict(STATS)  # the only key, chosen automatically
    ids = torch.tensor([[31999, 31744, 31872, 31900, 31800, 31850, 31744]])
    k = np.clip(32000 - ids.numpy() - 1, 0, 254)
    norm = -1 + (k + 0.5) * (2 / 255)
    q01, q99 = np.array(STATS["q01"]), np.array(STATS["q99"])
    expected = np.where(STATS["mask"], 0.5 * (norm + 1) * (q99 - q01) + q01, norm)
    np.testing.assert_allclose(policy.decode_actions(ids), expected, atol=1e-6)


def test_lora_save_writes_adapter_only_and_reloads(policy: VLAPolicy, tmp_path: Path) -> None:
    obs = _obs(2)
    batch = policy.prepare(obs, INSTR[:2])
    out = policy.act(batch, greedy=True)
    policy.save_pretrained(tmp_path)
    assert not (tmp_path / "base").exists()  # pi0 is the source checkpoint, never copied
    record = json.loads((tmp_path / "policy_config.json").read_text())
    assert record["family"] == "openvla" and Path(record["extra"]["model"]).is_dir()
    assert all("lora_" in k for k in load_file(tmp_path / "adapter" / "adapter_model.safetensors"))
    loaded = load_policy(tmp_path, device="cpu")
    again = loaded.act(loaded.prepare(obs, INSTR[:2]), greedy=True)
    assert torch.equal(again.token_ids, out.token_ids)
    torch.testing.assert_close(again.value, out.value)


def test_merge_and_export_writes_full_checkpoint(policy: VLAPolicy, tmp_path: Path) -> None:
    obs = _obs(2)
    batch = policy.prepare(obs, INSTR[:2])
    ids = policy.act(batch, greedy=True).token_ids
    policy.merge_and_export(tmp_path)
    merged = load_policy(tmp_path, device="cpu")
    assert merged.finetune == "frozen" and (tmp_path / "base" / "model.safetensors").exists()
    torch.testing.assert_close(
        merged.score(merged.prepare(obs, INSTR[:2]), ids).logits,
        policy.score(batch, ids).logits,
        atol=1e-4,
        rtol=0,
    )


def test_norm_stats_key_choice(ckpt: Path, tmp_path: Path) -> None:
    two = build_mini_openvla_checkpoint(
        tmp_path / "mini_two_keys", norm_stats={"a": {"action": STATS}, "b": {"action": STATS}}
    )
    base = {"family": "openvla", "model": str(two), "dtype": "float32", "device": "cpu", "finetune": "frozen"}
    with pytest.raises(ValueError, match=r"choose unnorm_key from \['a', 'b'\]"):
        build_policy(base)
    assert build_policy({**base, "unnorm_key": "b"}).norm_stats == ActionNormStats.from_dict(STATS)
    ours = ActionNormStats.identity(7)
    assert build_policy({**base, "norm_stats": ours.to_dict()}).norm_stats == ours


def test_missing_weights_say_where_they_looked(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"looked in local path .*hub cache .*models--nobody--no-such-vla.*HF_HUB_OFFLINE",
    ):
        build_policy({"family": "openvla", "model": "nobody/no-such-vla", "local_files_only": True})
    with pytest.raises(FileNotFoundError, match="checkpoint dir .*missing_dir' does not exist"):
        build_policy({"family": "openvla", "model": str(tmp_path / "missing_dir")})


def test_bad_inputs(policy: VLAPolicy) -> None:
    with pytest.raises(ValueError, match="dtype float32"):
        policy.prepare({"agentview_image": np.zeros((1, 64, 64, 3), np.float32)}, INSTR[:1])
    with pytest.raises(ValueError, match="'zzzq' tokenizes to unknown tokens only"):
        policy.prepare(_obs(1), ["zzzq"])
    with pytest.raises(ValueError, match="OpenVLA takes one camera image"):
        build_policy({"family": "openvla", "image_keys": ["agentview_image", "robot0_eye_in_hand_image"]})
