"""How far fine-tuning moved pi's weights from pi0's: the L2 norm of the difference, one function.

Two views of a policy's weights feed it:
- ``trainable_state``: the trainable parameters, the snapshot a training run can keep of pi0;
- ``merged_weights``: the backbone's effective weights (LoRA merged in) under the plain parameter names,
  so a LoRA checkpoint and a fully fine-tuned one are compared with pi0 alike (the held-out suite's view).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import nn


def trainable_state(policy: nn.Module, include_value_head: bool = False) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable weights: the pi0 snapshot for ``weight_l2_distance``."""
    return {
        name: p.detach().clone()
        for name, p in policy.named_parameters()
        if p.requires_grad and (include_value_head or not name.startswith("value_head."))
    }


def merged_weights(policy: nn.Module) -> dict[str, torch.Tensor]:
    """Backbone weights with any LoRA update merged in, keyed by the plain (non-peft) parameter names.

    The value head is not part of pi (it only scores states for PPO), so only the backbone is taken.
    """
    backbone = policy.backbone
    if isinstance(backbone, PeftModel):
        backbone.merge_adapter()
        try:
            return {
                _plain(n): p.detach().clone()
                for n, p in backbone.get_base_model().named_parameters()
                if "lora_" not in n
            }
        finally:
            backbone.unmerge_adapter()
    return {n: p.detach().clone() for n, p in backbone.named_parameters()}


def _plain(name: str) -> str:
    return name.replace(".base_layer.", ".")


def _lora_delta_sq(policy: nn.Module) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    found = False
    for module in policy.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    found = True
                    total += module.get_delta_weight(adapter).detach().double().pow(2).sum().cpu()
    if not found:
        raise ValueError(
            "weight_l2_distance(None, pi) needs a LoRA policy; pass a pi0_state snapshot instead"
        )
    return total


@torch.no_grad()
def weight_l2_distance(
    pi0_state: Mapping[str, torch.Tensor] | None,
    pi: nn.Module | Mapping[str, torch.Tensor],
    include_value_head: bool = False,
) -> float:
    """L2 norm of (pi's weights - pi0's), every weight of pi compared by name with pi0's.

    ``pi`` is a module (its ``trainable_state`` is compared) or a mapping of weights, e.g.
    ``merged_weights(policy)``. Every weight of pi must be in ``pi0_state`` with the same shape: a weight
    left out would shrink the distance without a word.

    With ``pi0_state=None`` and a LoRA module, pi0 is the adapter-free network and the distance is exact:
    sqrt(sum over adapted layers of ||scale * B @ A||_F^2), the change of the effective weights.
    """
    if pi0_state is None:
        if isinstance(pi, Mapping):
            raise ValueError("weight_l2_distance(None, pi) needs a LoRA policy, not a mapping of weights")
        return float(_lora_delta_sq(pi).sqrt())
    given = isinstance(pi, Mapping)
    current = pi if given else trainable_state(pi, include_value_head)
    what = "weight" if given else "trainable weight"
    missing = sorted(set(current) - set(pi0_state))
    if missing:
        raise ValueError(f"pi0_state lacks {what} {missing[0]!r} (and {len(missing) - 1} more)")
    for name, value in current.items():
        if pi0_state[name].shape != value.shape:
            raise ValueError(
                f"{what} {name!r} has shape {tuple(value.shape)} in pi but {tuple(pi0_state[name].shape)} in pi0_state"
            )
    total = 0.0
    for name, value in current.items():
        # Per weight in float32, summed across weights in float64: the arithmetic the recorded study's
        # figures were computed with, so a figure measured again comes out to the last digit.
        total += float(((value.float() - pi0_state[name].to(value.device).float()) ** 2).sum())
    return total**0.5
