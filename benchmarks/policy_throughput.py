"""Tiny VLA speed and memory on CPU: KV-cached act vs recomputation, score and decode cost, and the
memory of LoRA + reference (adapters disabled) against two separate copies of the policy.

    python benchmarks/policy_throughput.py [--batches 1 8 32] [--threads 1] [--repeats 10]

Ratios are relative to ONE prompt forward pass (vision encoder + decoder over the prompt), the unit
every other cost is measured in.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vla_razor.policies import PolicyBatch, VLAPolicy, build_policy
from vla_razor.policies.base import _positions

INSTRUCTIONS = [
    "pick up the can",
    "lift the red cube and place it in the bin",
    "open the door",
    "stack the blocks",
]


def _interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per function, timed round-robin so that load from other processes on a shared
    machine hits every measurement alike (the ratios are what matter)."""
    for fn in fns.values():
        fn()  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


@torch.no_grad()
def prompt_forward(policy: VLAPolicy, batch: PolicyBatch) -> torch.Tensor:
    model = policy.model
    embeds, mask = policy._embed_prefix(model, batch)
    attn = None if bool(mask.all()) else mask
    return model.language_model.get_decoder()(
        inputs_embeds=embeds, attention_mask=attn, position_ids=_positions(mask), use_cache=False
    ).last_hidden_state


@torch.no_grad()
def act_without_cache(policy: VLAPolicy, batch: PolicyBatch) -> torch.Tensor:
    """Greedy 7 tokens by re-running the whole sequence for every token (what the cache avoids)."""
    model = policy.model
    embed = model.get_input_embeddings()
    decoder = model.language_model.get_decoder()
    embeds, mask = policy._embed_prefix(model, batch)
    tokens: list[torch.Tensor] = []
    for _ in range(7):
        extra = [embed(t)[:, None] for t in tokens]
        x = torch.cat([embeds, *extra], dim=1)
        m = torch.cat([mask, mask.new_ones((len(batch), len(tokens)))], dim=1)
        h = decoder(inputs_embeds=x, attention_mask=None if bool(m.all()) else m, position_ids=_positions(m))
        logits = policy._action_logits(model, h.last_hidden_state[:, -1])
        tokens.append(policy.action_tokenizer.bin_slots_to_ids(F.log_softmax(logits, -1).argmax(-1)))
    return torch.stack(tokens, 1)


def random_observations(policy: VLAPolicy, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch of every input the policy reads (its cameras, and proprioception if it uses it), so the
    benchmark follows the policy's architecture instead of naming one camera."""
    size = int(policy.settings.image_size)
    obs = {
        key: rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        for key in policy.settings.image_keys
    }
    if policy.settings.use_proprio:
        obs["proprio"] = rng.normal(size=(batch, int(policy.model.config.proprio_dim))).astype(np.float32)
    return obs


def tensor_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of distinct parameter/buffer storages (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                total += t.untyped_storage().nbytes()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = build_policy({"family": "tiny", "finetune": "lora", "lora": {"r": 16}})
    policy.eval()
    plain_params = build_policy({"family": "tiny", "finetune": "frozen"}).num_parameters()
    print(
        f"tiny VLA (default config): {plain_params:,} parameters (backbone + value head); with LoRA r=16: "
        f"{policy.num_parameters():,}, trainable {policy.num_parameters(trainable_only=True):,}; "
        f"threads={args.threads}"
    )

    header = (
        f"{'batch':>5} | {'act/s cache':>11} | {'act/s no-cache':>14} | {'speed-up':>8} | "
        f"{'prompt fwd ms':>13} | {'score/prompt':>12} | {'decode7/prompt':>14} | {'act/prompt':>10}"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for b in args.batches:
        obs = random_observations(policy, b, rng)
        batch = policy.prepare(obs, [INSTRUCTIONS[i % len(INSTRUCTIONS)] for i in range(b)])
        ids = policy.act(batch, greedy=True).token_ids
        assert torch.equal(act_without_cache(policy, batch), ids), "cached and uncached decoding disagree"
        with torch.no_grad():
            t = _interleaved_medians(
                {
                    "prompt": lambda batch=batch: prompt_forward(policy, batch),
                    "act": lambda batch=batch: policy.act(batch),
                    "nocache": lambda batch=batch: act_without_cache(policy, batch),
                    "score": lambda batch=batch, ids=ids: policy.score(batch, ids),
                },
                args.repeats,
            )
        t_prompt, t_act, t_nocache, t_score = t["prompt"], t["act"], t["nocache"], t["score"]
        print(
            f"{b:>5} | {b / t_act:>11.1f} | {b / t_nocache:>14.1f} | {t_nocache / t_act:>7.2f}x | "
            f"{1000 * t_prompt:>13.2f} | {t_score / t_prompt:>11.2f}x | {(t_act - t_prompt) / t_prompt:>13.2f}x | "
            f"{t_act / t_prompt:>9.2f}x"
        )

    lora_bytes = tensor_bytes(policy)
    plain = build_policy({"family": "tiny", "finetune": "frozen"})
    two_copies = 2 * tensor_bytes(plain)
    full = build_policy({"family": "tiny", "finetune": "full"})
    full_bytes = tensor_bytes(full)
    one = tensor_bytes(plain)
    print()
    print(f"{'policy memory (weights + buffers)':<48} | {'MB':>7} | vs one plain policy")
    print(f"{'one plain policy (pi only)':<48} | {one / 2**20:>7.2f} | 1.000x")
    print(
        f"{'LoRA r=16 policy, reference = adapters off':<48} | {lora_bytes / 2**20:>7.2f} | {lora_bytes / one:.3f}x"
    )
    print(
        f"{'full fine-tune policy + frozen reference copy':<48} | {full_bytes / 2**20:>7.2f} | {full_bytes / one:.3f}x"
    )
    print(
        f"{'two separate policies (pi and pi0)':<48} | {two_copies / 2**20:>7.2f} | {two_copies / one:.3f}x"
    )
    print(f"reference overhead with LoRA: {100 * (lora_bytes - one) / one:.1f}% (target < 10%)")


if __name__ == "__main__":
    main()
