"""The OpenVLA path against upstream's quirks: loading on current transformers, attention, images that
matter, gripper conventions, merged export, and the GPU smoke script at toy size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from packaging.version import Version

from vla_razor.policies import VLAPolicy, build_policy, load_policy
from vla_razor.policies.action_adapter import get_adapter
from vla_razor.policies.mini_openvla.build import build_mini_openvla_checkpoint
from vla_razor.policies.openvla import remote_model_class, set_language_model_attention
from vla_razor.sampling import check_generator_device, seeded_generator

ROOT = Path(__file__).resolve().parents[2]
STATS = {"q01": [-0.2] * 6 + [0.0], "q99": [0.2] * 6 + [1.0], "mask": [True] * 6 + [False]}
INSTR = ["pick up the can", "lift the red cube"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mini_openvla_checkpoint(
        tmp_path_factory.mktemp("quirks") / "mini", norm_stats={"libero_like": {"action": STATS}}
    )


def _policy(ckpt: Path, **kw: object) -> VLAPolicy:
    return build_policy(
        {
            "family": "openvla",
            "model": str(ckpt),
            "dtype": "float32",
            "device": "cpu",
            "finetune": "frozen",
            **kw,
        }
    )


def _frames(value: int, n: int = 2) -> dict[str, np.ndarray]:
    return {"agentview_image": np.full((n, 64, 64, 3), value, dtype=np.uint8)}


@pytest.mark.skipif(
    Version(transformers.__version__) < Version("4.54"),
    reason="the attention check moved into __init__ in 4.54",
)
@pytest.mark.parametrize("attn", [None, "sdpa"])
def test_mini_remote_code_reproduces_upstream_sdpa_failure(ckpt: Path, attn: str | None) -> None:
    """Loading the way OpenVLA's model card does fails exactly as upstream does (openvla-oft #108):
    the mini's _supports_sdpa property reads language_model before __init__ has built it."""
    cls = remote_model_class(str(ckpt), offline=True)
    kwargs = {} if attn is None else {"attn_implementation": attn}
    with pytest.raises(AttributeError, match="language_model|_supports_sdpa"):
        cls.from_pretrained(str(ckpt), **kwargs)


def test_default_config_loads_upstream_format_with_sdpa(ckpt: Path) -> None:
    sdpa = _policy(ckpt)  # attn_implementation: null, as configs/policy/openvla.yaml
    eager = _policy(ckpt, attn_implementation="eager")
    assert sdpa.model.language_model.config._attn_implementation == "sdpa"
    assert eager.model.language_model.config._attn_implementation == "eager"
    batch = sdpa.prepare(_frames(90), INSTR)
    tokens = sdpa.act(batch, greedy=True).token_ids
    torch.testing.assert_close(
        sdpa.score(batch, tokens).logits, eager.score(batch, tokens).logits, atol=1e-5, rtol=0
    )


def test_bad_attention_implementation_is_one_line(ckpt: Path) -> None:
    with pytest.raises(ValueError, match=r"attn_implementation='fast'.*one of"):
        set_language_model_attention(_policy(ckpt).model, "fast")


def test_action_logits_depend_on_the_image(ckpt: Path) -> None:
    """Guards against upstream's silent failure on transformers >= 4.50 (openvla #346), where the image
    was dropped and every frame gave the same action: a black and a white frame must differ."""
    policy = _policy(ckpt)
    tokens = torch.full((2, 7), 31800)
    black = policy.score(policy.prepare(_frames(0), INSTR), tokens).logits
    white = policy.score(policy.prepare(_frames(255), INSTR), tokens).logits
    assert float((black - white).abs().max()) > 1e-3


def test_gripper_presets_map_libero_convention() -> None:
    libero = get_adapter("openvla_libero")
    model_out = np.zeros((3, 7), dtype=np.float32)
    model_out[:, -1] = [1.0, 0.0, 0.8]  # LIBERO fine-tunes: 1 = open
    env = libero.to_env(model_out)
    assert env[:, -1].tolist() == [-1.0, 1.0, -1.0]  # robosuite: -1 = open, +1 = close (binarised)
    np.testing.assert_array_equal(libero.from_env(env)[:, -1], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(env[:, :6], model_out[:, :6])
    same = get_adapter("robosuite")
    np.testing.assert_array_equal(same.to_env(model_out), model_out)
    with pytest.raises(ValueError, match="unknown action_adapter 'bridge'.*openvla_libero"):
        get_adapter("bridge")


def test_gripper_adapter_is_applied_and_saved(ckpt: Path, tmp_path: Path) -> None:
    policy = _policy(ckpt, action_adapter="openvla_libero")
    # Gripper bin of 0.998 (model: open) must reach robosuite as -1 (open).
    ids = policy.encode_actions(np.array([[0, 0, 0, 0, 0, 0, -1.0]], dtype=np.float32))
    assert policy.decode_actions(ids)[0, -1] == -1.0
    assert policy.action_tokenizer.decode(ids.numpy())[0, -1] > 0.99  # the token says "1 = open"
    policy.save_pretrained(tmp_path / "p")
    record = json.loads((tmp_path / "p" / "policy_config.json").read_text())
    assert record["action_adapter"] == "openvla_libero"
    assert load_policy(tmp_path / "p", device="cpu").decode_actions(ids)[0, -1] == -1.0


def test_merge_and_export_keeps_greedy_tokens_in_fp32(ckpt: Path, tmp_path: Path) -> None:
    policy = _policy(ckpt, finetune="lora", lora={"r": 4, "alpha": 8, "target_modules": "all-linear"})
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    obs = {"agentview_image": np.random.default_rng(0).integers(0, 256, (16, 64, 64, 3), dtype=np.uint8)}
    instructions = [INSTR[i % 2] for i in range(16)]
    adapter = policy.act(policy.prepare(obs, instructions), greedy=True).token_ids
    policy.merge_and_export(tmp_path / "merged")
    merged = load_policy(tmp_path / "merged", device="cpu")
    assert merged.finetune == "frozen"
    assert torch.equal(merged.act(merged.prepare(obs, instructions), greedy=True).token_ids, adapter)


def test_generator_device_mismatch_is_one_line() -> None:
    assert seeded_generator(3, "cpu").device.type == "cpu"
    with pytest.raises(ValueError, match="generator is on 'cpu' but the policy is on 'cuda'"):
        check_generator_device(torch.Generator(), torch.device("cuda"))


def test_policy_act_rejects_a_generator_on_another_device(
    ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(ckpt)
    batch = policy.prepare(_frames(10), INSTR)
    monkeypatch.setattr(type(policy), "device", property(lambda self: torch.device("cuda")))
    with pytest.raises(ValueError, match="seeded_generator"):
        policy.act(batch, generator=torch.Generator())


@pytest.mark.slow  # one to two minutes of a 2-core machine; the paths it times are tested one by one above
def test_gpu_smoke_script_runs_at_toy_size_on_cpu(tmp_path: Path) -> None:
    """benchmarks/gpu_smoke.py is meant for a lent GPU; at toy size it runs every part on a CPU."""
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_smoke.py"), "--device", "cpu", "--size", "tiny"]
        + ["--repeats", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["loader_llm_attention"] == "sdpa"
    assert figures["openvla_merge_changed_token_fraction"] == 0.0  # fp32: merging is exact
    assert figures["openvla_ppo_logprob_recompute_gap"] < 1e-3
    assert not any(k.endswith("_failed") for k in figures)


def test_dtype_reaches_the_loader_on_this_transformers(ckpt: Path) -> None:
    """transformers >= 4.56 renamed from_pretrained's torch_dtype to dtype; the loader picks the name
    this version takes, so a bf16 request gives bf16 weights (and not a silent fp32 load)."""
    policy = _policy(ckpt, dtype="bfloat16")
    assert policy.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert policy.value_head.net[0].weight.dtype == torch.float32  # values stay fp32 over a bf16 trunk


def test_float32_load_overrides_openvla_pinned_bf16_text_config(ckpt: Path) -> None:
    """OpenVLA's config.json pins text_config to bfloat16 and upstream builds its Llama from that
    sub-config; a float32 load used to give a bf16 LLM beside fp32 vision towers, which failed on the
    first image (found with upstream's own remote code)."""
    config = json.loads((ckpt / "config.json").read_text())
    assert config["text_config"].get("dtype", config["text_config"].get("torch_dtype")) == "bfloat16"
    policy = _policy(ckpt)  # dtype float32
    dtypes = {p.dtype for p in policy.model.parameters()}
    assert dtypes == {torch.float32}, dtypes
    out = policy.act(policy.prepare(_frames(30), INSTR), greedy=True)
    assert out.token_ids.shape == (2, 7)
