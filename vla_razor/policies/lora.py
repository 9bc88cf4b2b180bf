"""LoRA through peft: settings, target validation, and the pi0 (adapter-free) view of the weights."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from vla_razor.errors import BadInputError

LLAMA_LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 16
    dropout: float = 0.0
    # A list of module-name suffixes, a regex string, or peft's "all-linear" (every nn.Linear but lm_head).
    target_modules: list[str] | str = field(default_factory=lambda: list(LLAMA_LINEAR_MODULES))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> LoraSettings:
        data = dict(data or {})
        unknown = set(data) - {"r", "alpha", "dropout", "target_modules"}
        if unknown:
            raise BadInputError(
                f"unknown LoRA settings {sorted(unknown)}; valid: r, alpha, dropout, target_modules"
            )
        out = cls(**data)
        if out.r <= 0:
            raise BadInputError(f"LoRA rank r={out.r} must be positive")
        if not 0.0 <= out.dropout < 1.0:
            raise BadInputError(f"LoRA dropout={out.dropout} must be in [0, 1)")
        if not isinstance(out.target_modules, str):
            out.target_modules = list(out.target_modules)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _adaptable_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d | nn.Embedding) and n]


def validate_targets(model: nn.Module, targets: list[str] | str) -> None:
    """Fail in one line, listing valid names, instead of peft's long error (or silent no-op)."""
    names = _adaptable_names(model)
    suffixes = sorted({n.rsplit(".", 1)[-1] for n in names})
    hint = ", ".join(suffixes[:12])
    if targets == "all-linear":
        return
    if isinstance(targets, str):
        if not any(re.fullmatch(targets, n) for n in names):
            raise BadInputError(
                f"LoRA target regex {targets!r} matches no module; valid module names include: {hint}"
            )
        return
    if not targets:
        raise BadInputError(f"LoRA target_modules is empty; valid module names include: {hint}")
    for t in targets:
        if not any(n == t or n.endswith("." + t) for n in names):
            raise BadInputError(
                f"LoRA target module {t!r} does not exist in the model; valid names include: {hint}"
            )


def apply_lora(model: nn.Module, settings: LoraSettings) -> PeftModel:
    validate_targets(model, settings.target_modules)
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
    )
    return get_peft_model(model, config)


def base_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict with LoRA layers stripped: names as in the plain model, weights as currently held.

    Unmerged that is pi0; after ``merge_adapter()`` it is the merged pi.
    """
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        out[name.replace(".base_layer.", ".")] = tensor.detach().contiguous()
    return out
