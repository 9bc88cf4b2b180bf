"""GPU smoke run: every GPU code path of vla-razor once, on one CUDA device, with the figures that matter.

    python benchmarks/gpu_smoke.py                      # on a GPU machine: 7B-shaped OpenVLA, bf16, LoRA
    python benchmarks/gpu_smoke.py --device cpu --size tiny   # the same code paths at toy size (CI test)

What it runs (no simulator: the fake reach task of the tests stands in for robosuite, so the script
needs only torch, transformers, peft and numpy, plus this repository):
1. tiny VLA: one PPO iteration with sampled rollouts (CUDA generator), then forward/reverse KL of the
   trained policy against pi0 on fresh states (prefixes sampled on the GPU);
2. the mini OpenVLA remote code written to disk and loaded through the real loader (trust_remote_code,
   eager load then SDPA for the LLM), one sampled decode;
3. an OpenVLA-7B-shaped model (mini remote code with Llama-2-7B's 32 layers x 4096 width and two
   ViT-L-sized vision towers, random weights, bf16, LoRA r=32): greedy/sampled batch decode over 1 and 8
   envs (actions/s), one PPO iteration over 8 envs, one BC step, peak GPU memory, and the fraction of
   greedy action tokens that change when the LoRA update is merged into the bf16 weights.

It prints one line per figure and writes them to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import peft
import torch
import transformers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake reach task lives with the tests

from tests.trainers.fake_env import FakeReachVectorEnv  # noqa: E402
from tests.trainers.tiny_policy import tiny_policy_cfg  # noqa: E402
from vla_razor.metrics.divergences import action_token_divergences  # noqa: E402
from vla_razor.policies import build_policy  # noqa: E402
from vla_razor.policies.mini_openvla.build import (  # noqa: E402
    build_mini_openvla,
    build_mini_openvla_checkpoint,
)
from vla_razor.policies.mini_openvla.configuration_mini_openvla import LLAMA2_7B  # noqa: E402
from vla_razor.policies.openvla import OpenVLAPolicy, set_language_model_attention  # noqa: E402
from vla_razor.sampling import seeded_generator  # noqa: E402
from vla_razor.trainers.bc import bc_batch_loss  # noqa: E402
from vla_razor.trainers.ppo import PPOSettings, train_ppo  # noqa: E402

INSTRUCTION = "lift the red cube"
STATS = {"q01": [-1.0] * 6 + [-1.0], "q99": [1.0] * 6 + [1.0], "mask": [True] * 6 + [False]}
# The tests' tiny VLA (one 32x32 camera, no proprio) with LoRA adapters.
TINY_POLICY = tiny_policy_cfg(
    finetune="lora", lora={"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
)
# Model shapes for part 3: "7b" is OpenVLA-7B's; "tiny" runs the same code on a CPU in seconds.
SHAPES: dict[str, dict[str, Any]] = {
    "7b": {"vision_backbone": "vit", "text_config": LLAMA2_7B},
    "tiny": {
        "vision_backbone": "vit",
        "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
        "featurizer_config": {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2},
        "fused_featurizer_config": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 3,
            "num_attention_heads": 2,
        },
    },
}

figures: dict[str, Any] = {}


def report(key: str, value: Any, unit: str = "") -> None:
    figures[key] = value
    shown = f"{value:.4g}" if isinstance(value, float) else value
    print(f"{key}: {shown}{(' ' + unit) if unit else ''}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_obs(n: int, size: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return {"agentview_image": images, "instruction": tuple([INSTRUCTION] * n)}


def ppo_settings(num_steps: int, minibatch: int) -> PPOSettings:
    return PPOSettings(
        lr=1e-4,
        num_iterations=1,
        num_steps=num_steps,
        update_epochs=1,
        minibatch_size=minibatch,
        save_every=0,
        target_kl=None,
    )


def timed_ppo_iteration(
    policy: Any, env: FakeReachVectorEnv, settings: PPOSettings, workdir: Path
) -> dict[str, Any]:
    """One PPO iteration of ``policy`` on ``env``, its wall time reported as ``<workdir name>_iteration_s``."""
    t0 = time.perf_counter()
    metrics = train_ppo(policy, env, settings, workdir, {}, progress=False)
    sync(policy.device)
    report(f"{workdir.name}_iteration_s", time.perf_counter() - t0, "s")
    return metrics


def tiny_vla(device: torch.device, workdir: Path) -> None:
    """Part 1: sampled PPO rollout + update and a KL measurement, all on ``device``."""
    policy = build_policy({**TINY_POLICY, "device": str(device)})
    env = FakeReachVectorEnv(num_envs=4, horizon=2, image_size=32)
    metrics = timed_ppo_iteration(policy, env, ppo_settings(8, 16), workdir / "tiny_ppo")
    report("tiny_ppo_approx_kl", metrics["approx_kl"])
    report("tiny_ppo_logprob_recompute_gap", metrics["logprob_recompute_gap"])
    obs = fake_obs(32, 32, seed=1)
    batch = policy.prepare(obs, list(obs["instruction"]))
    div = action_token_divergences(
        policy, policy, batch, num_prefix_samples=2, generator=seeded_generator(0, policy.device)
    )
    report("tiny_forward_kl_to_pi0", float(div["forward_kl"].mean()))
    report("tiny_reverse_kl_to_pi0", float(div["reverse_kl"].mean()))


def loaded_mini_openvla(device: torch.device, dtype: str, workdir: Path) -> None:
    """Part 2: the remote-code checkpoint through the real loader, then a sampled decode."""
    ckpt = build_mini_openvla_checkpoint(workdir / "mini_openvla", norm_stats={"fake": {"action": STATS}})
    policy = build_policy(
        {"family": "openvla", "model": str(ckpt), "dtype": dtype, "device": str(device), "finetune": "frozen"}
    )
    report("loader_llm_attention", policy.model.language_model.config._attn_implementation)
    obs = fake_obs(4, 64, seed=2)
    out = policy.act(policy.prepare(obs, list(obs["instruction"])), generator=seeded_generator(0, device))
    report("loader_sampled_actions_finite", bool(np.isfinite(out.actions).all()))


def seconds_per_call(fn: Any, device: torch.device, repeats: int) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (kernels, allocator)."""
    fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeats


def decode_rate(policy: OpenVLAPolicy, n: int, greedy: bool, repeats: int) -> float:
    obs = fake_obs(n, 64, seed=3)
    batch = policy.prepare(obs, list(obs["instruction"]))
    generator = seeded_generator(0, policy.device)
    seconds = seconds_per_call(
        lambda: policy.act(batch, greedy=greedy, generator=generator), policy.device, repeats
    )
    return n / seconds


def openvla_sized(device: torch.device, size: str, workdir: Path, repeats: int) -> None:
    """Part 3: a model of OpenVLA-7B's shape (random weights) under LoRA: decode, PPO, BC, merge."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    model, processor = build_mini_openvla(
        norm_stats={"fake": {"action": STATS}}, device=device, dtype=dtype, **SHAPES[size]
    )
    set_language_model_attention(model, "sdpa")
    policy = OpenVLAPolicy.from_model(
        model,
        processor,
        {"model": f"random-openvla-{size}", "lora": {"r": 32, "alpha": 16, "target_modules": "all-linear"}},
    )
    sync(device)
    report("openvla_build_s", time.perf_counter() - t0, "s")
    report("openvla_parameters_billion", policy.num_parameters() / 1e9)
    report("openvla_trainable_parameters_million", policy.num_parameters(trainable_only=True) / 1e6)
    for n in (1, 8):
        report(f"openvla_greedy_actions_per_s_batch{n}", decode_rate(policy, n, True, repeats), "actions/s")
    report("openvla_sampled_actions_per_s_batch8", decode_rate(policy, 8, False, repeats), "actions/s")
    # Where a decode's time goes: one prompt pass (vision towers + ~280-token prefill) vs 6 cached steps.
    obs = fake_obs(1, 64, seed=3)
    batch = policy.prepare(obs, list(obs["instruction"]))
    seconds = seconds_per_call(lambda: policy.value(batch), device, repeats)
    report("openvla_prompt_pass_ms_batch1", 1000 * seconds, "ms")

    env = FakeReachVectorEnv(num_envs=8, horizon=2, image_size=64)
    metrics = timed_ppo_iteration(policy, env, ppo_settings(4, 8), workdir / "openvla_ppo")
    report("openvla_ppo_update_share", metrics["total_time_share_update"])
    report("openvla_ppo_first_epoch_approx_kl", metrics["approx_kl"])
    report("openvla_ppo_logprob_recompute_gap", metrics["logprob_recompute_gap"])

    obs = fake_obs(8, 64, seed=4)
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 7)).astype(np.float32)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    policy.train()
    t0 = time.perf_counter()
    loss, bc_metrics = bc_batch_loss(
        policy, {"agentview_image": obs["agentview_image"]}, [INSTRUCTION] * 8, actions
    )
    loss.backward()
    optimizer.step()
    sync(device)
    report("openvla_bc_step_s", time.perf_counter() - t0, "s")
    report("openvla_bc_loss", bc_metrics["loss"])

    # Merging LoRA into bf16 weights rounds them: how many greedy action tokens does that change?
    # (OpenVLA-OFT users report success falling to 0% after re-merging LoRA.) Adapters get a visible
    # update first; after one tiny step they would round away entirely.
    policy.eval()
    torch.manual_seed(0)  # the same adapter update on every run
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.02)
    obs = fake_obs(64, 64, seed=5)
    batch = policy.prepare(obs, list(obs["instruction"]))
    adapter_tokens = policy.act(batch, greedy=True).token_ids
    policy.backbone.merge_adapter()
    try:
        merged_tokens = policy.act(batch, greedy=True).token_ids
        # Deployment speed: with the update merged, the LoRA layers add no kernels.
        for n in (1, 8):
            rate = decode_rate(policy, n, True, repeats)
            report(f"openvla_merged_greedy_actions_per_s_batch{n}", rate, "actions/s")
    finally:
        policy.backbone.unmerge_adapter()
    report("openvla_merge_changed_token_fraction", float((adapter_tokens != merged_tokens).float().mean()))
    if device.type == "cuda":
        report("peak_gpu_memory_gib", torch.cuda.max_memory_allocated(device) / 2**30, "GiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=sorted(SHAPES), default="7b", help="shape of the OpenVLA model")
    parser.add_argument("--repeats", type=int, default=10, help="timed decodes per batch size")
    parser.add_argument("--skip", nargs="*", default=[], choices=["tiny", "loader", "openvla"])
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device; use --device cpu --size tiny")
    report("torch", torch.__version__)
    report("transformers", transformers.__version__)
    report("peft", peft.__version__)
    report("python", platform.python_version())
    report(
        "device_name", torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    )
    dtype = "bfloat16" if device.type == "cuda" else "float32"
    parts = {
        "tiny": lambda work: tiny_vla(device, work),
        "loader": lambda work: loaded_mini_openvla(device, dtype, work),
        "openvla": lambda work: openvla_sized(device, args.size, work, args.repeats),
    }
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in parts.items():
            if name in args.skip:
                continue
            # A failing part is reported with its traceback and the others still run: one GPU lease
            # should show every broken path at once.
            try:
                part(Path(tmp) / name)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                report(f"{name}_failed", True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    if failed:
        raise SystemExit(f"error: smoke parts failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
