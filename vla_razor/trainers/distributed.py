"""Multi-process training under ``torchrun`` (or ``accelerate launch``): one process per device.

Each rank runs its own environments with its own seeds and computes gradients on its own data; the
gradients are averaged with one all-reduce per step (bucketed into a flat buffer) before the optimizer
steps, so every rank holds identical weights. Only rank 0 writes checkpoints and logs. The policy API
(act/score rather than forward) makes DDP's forward hooks awkward, and the explicit all-reduce is the
same arithmetic. For OpenVLA-7B with LoRA only the adapter gradients (a few tens of MB) travel.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group when launched by torchrun/accelerate (WORLD_SIZE > 1); no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
    return info


def device_for(device: str, info: DistInfo) -> torch.device:
    if device.startswith("cuda") and info.enabled:
        return torch.device("cuda", info.local_rank)
    return torch.device(device)


def all_reduce_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average gradients across ranks in one flat all-reduce (params without a grad count as zero)."""
    if not info.enabled:
        return
    # FSDP-sharded parameters (DTensors) had their gradients reduce-scattered by FSDP already.
    params = [p for p in params if not isinstance(p, DTensor)]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).to(g.dtype)
        offset += n


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics across ranks so rank 0 logs the global figure.

    Ranks may report different keys (e.g. no episode finished on one rank): each key is averaged over
    the ranks that reported a finite value. Metric dicts are tiny, so an object all-gather is cheap.
    """
    if not info.enabled:
        return values
    gathered: list[dict[str, float] | None] = [None] * info.world_size
    dist.all_gather_object(gathered, {k: float(v) for k, v in values.items()})
    keys = sorted({k for d in gathered if d for k in d})
    out: dict[str, float] = {}
    for key in keys:
        finite = [d[key] for d in gathered if d and key in d and math.isfinite(d[key])]
        if finite:
            out[key] = sum(finite) / len(finite)
    return out


def collective_device() -> torch.device:
    """Where a tensor must live for this process group's collectives: NCCL moves CUDA tensors only,
    gloo CPU tensors (a CPU scalar all-reduced under NCCL fails on every GPU run)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def max_over_ranks(value: int, info: DistInfo) -> int:
    """The largest ``value`` any rank holds (e.g. a count every rank must then agree on)."""
    if not info.enabled:
        return value
    t = torch.tensor([int(value)], dtype=torch.long, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def mean_over_ranks(value: float, info: DistInfo) -> float:
    """The mean of a scalar over ranks: a decision taken from it (e.g. PPO's target_kl early stop) is
    then the same on every rank, so no rank leaves a loop of collectives that the others stay in."""
    if not info.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when it is true on at least one (e.g. a non-finite loss anywhere stops all)."""
    return bool(max_over_ranks(int(bool(flag)), info))


def broadcast_parameters(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Start every rank from rank 0's weights (e.g. a freshly initialised value head)."""
    if not info.enabled:
        return
    for p in params:
        if not isinstance(p, DTensor):  # sharded weights came from identical full copies
            dist.broadcast(p.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
