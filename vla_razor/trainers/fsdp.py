"""Full fine-tuning of large backbones with torch FSDP2 (``fully_shard``), under torchrun.

LoRA runs replicate the frozen base on every GPU and all-reduce only the adapters' gradients
(:mod:`vla_razor.trainers.distributed`): for OpenVLA-7B that is 15 GB of bf16 weights per GPU and a few
tens of MB of traffic. A full fine-tune cannot replicate: weights, gradients and AdamW's two moments of
7.6 B parameters are about 120 GB in fp32. FSDP2 shards all of them across ranks.

The policy API calls submodules directly (the embedding, the decoder, the LM head, the vision tower)
rather than one root ``forward``, so every module that owns parameters is sharded as its own unit:
FSDP2 gathers a unit's weights in that unit's forward hook, whichever way it is reached. The value
head is small and stays replicated; its gradients keep the explicit all-reduce.

FSDP's collectives need every rank to run the same sequence of sharded forwards. Training keeps that
(same rollout length and minibatch count everywhere; data-dependent extra passes are made in lockstep,
see ``RolloutCollector(lockstep=...)``); in-training evaluation, which runs episodes of different
lengths, is refused with FSDP (evaluate the saved checkpoints instead).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from vla_razor.trainers.distributed import DistInfo

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=True))


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules to shard: every parameterised element of a ModuleList (decoder layers, ViT blocks,
    camera encoders), the token embedding and the LM head: where nearly all the weights are.

    None of them is nested in another sharded module. FSDP2 initialises lazily from the root of a
    sharded tree and insists that the root runs first; the policy calls the embedding before the
    decoder, so a sharded decoder above the layers would be entered out of order. Each unit is
    therefore its own root. The small rest (norms, projector, convolutions) stays replicated, and
    its gradients take the explicit all-reduce like the value head's.
    """
    lm = model.language_model
    if getattr(lm.config, "tie_word_embeddings", False):
        raise ValueError(
            "FSDP here shards the embedding and the LM head separately; tied weights are not supported"
        )
    units: dict[int, nn.Module] = {}
    for module in model.modules():
        if isinstance(module, nn.ModuleList):
            for child in module:
                if _owns_parameters(child):
                    units.setdefault(id(child), child)
    for module in (lm.get_input_embeddings(), lm.get_output_embeddings()):
        units.setdefault(id(module), module)
    chosen = list(units.values())
    # Elements of a ModuleList nested inside another chosen unit (e.g. a block's own sub-layers) are
    # left to their enclosing unit.
    inner = {id(m) for unit in chosen for m in unit.modules() if m is not unit}
    return [m for m in chosen if id(m) not in inner]


def _shard(model: nn.Module) -> None:
    # Sharded in the dtype the model was loaded in: for a 7B full fine-tune load float32 (master
    # weights and AdamW moments in fp32, about 16 bytes a parameter split across ranks).
    for unit in shard_units(model):
        fully_shard(unit)


def shard_policy(policy: Any, info: DistInfo) -> None:
    """Shard a full fine-tune's backbone (and its frozen pi0 copy) across the ranks, in place.

    Call it after the weights are loaded (pi0, or the checkpoint being resumed) and before the
    optimizer is built. Every rank must hold the same weights: they do, since builds are seeded and
    checkpoints are loaded whole.
    """
    if policy.finetune != "full":
        raise ValueError(
            f"fsdp=true shards full fine-tuning; this policy has finetune={policy.finetune!r} "
            "(LoRA replicates the frozen base and all-reduces the adapters: drop fsdp=true)"
        )
    if not info.enabled:
        raise ValueError("fsdp=true needs several processes: launch with torchrun --nproc_per_node N")
    if policy.reference_model is not None:
        _shard(policy.reference_model)  # the frozen pi0 copy is as large as the model
    _shard(policy.model)


def is_sharded(policy: Any) -> bool:
    return any(isinstance(p, DTensor) for p in policy.model.parameters())


def replicated_parameters(params: list[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters FSDP does not manage (e.g. the value head): their gradients need an all-reduce."""
    return [p for p in params if not isinstance(p, DTensor)]


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """Global gradient norm over sharded (DTensor) and replicated gradients, clipped to ``max_norm``
    when it is > 0. One all-reduce of the shards' squared sums: each rank holds distinct shards, while
    replicated gradients are already identical on every rank and count once."""
    sharded = [p.grad for p in params if p.grad is not None and isinstance(p.grad, DTensor)]
    local = [p.grad for p in params if p.grad is not None and not isinstance(p.grad, DTensor)]
    device = sharded[0].to_local().device if sharded else torch.device("cpu")
    sq = torch.zeros((), dtype=torch.float64, device=device)
    for g in sharded:
        sq += g.to_local().double().pow(2).sum()
    dist.all_reduce(sq, op=dist.ReduceOp.SUM)
    for g in local:
        sq += g.detach().double().pow(2).sum().to(device)
    total = float(sq.sqrt())
    if max_norm and max_norm > 0 and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in sharded:
            g.to_local().mul_(scale)
        for g in local:
            g.mul_(scale)
    return total


def full_backbone_state(policy: Any) -> dict[str, torch.Tensor] | None:
    """The backbone's full state dict on rank 0 (CPU), for ``save_pretrained``; a collective: every
    rank calls it. None when the policy is not sharded (it then saves its own state)."""
    if not is_sharded(policy):
        return None
    return get_model_state_dict(policy.model, options=_FULL)


def optimizer_state(policy: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state, gathered whole when sharded (a collective then), so a checkpoint written
    by rank 0 resumes on any number of ranks."""
    if not is_sharded(policy):
        return optimizer.state_dict()
    return get_optimizer_state_dict(policy, optimizer, options=_FULL)


def load_optimizer_state(policy: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if not is_sharded(policy):
        optimizer.load_state_dict(state)
        return
    set_optimizer_state_dict(
        policy, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
    )
