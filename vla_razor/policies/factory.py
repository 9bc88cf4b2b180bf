"""build_policy (from a config mapping) and load_policy (from a saved directory)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vla_razor.errors import BadInputError
from vla_razor.policies.base import VLAPolicy, read_policy_record

FAMILIES = ("tiny", "openvla")


def _family_class(family: str) -> type[VLAPolicy]:
    if family == "tiny":
        from vla_razor.policies.tiny.policy import TinyVLAPolicy

        return TinyVLAPolicy
    if family == "openvla":
        from vla_razor.policies.openvla import OpenVLAPolicy

        return OpenVLAPolicy
    raise BadInputError(f"unknown policy family {family!r}; valid: {FAMILIES}")


def load_policy(
    path: str | Path,
    *,
    finetune: str | None = None,
    lora: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
) -> VLAPolicy:
    """Rebuild a policy saved with ``save_pretrained``; optionally switch its fine-tuning mode."""
    p = Path(path)
    record = read_policy_record(p)
    cls = _family_class(record.get("family", ""))
    return cls.from_saved(p, record, finetune=finetune, lora=lora, device=device)  # type: ignore[attr-defined]


def build_policy(cfg: Mapping[str, Any]) -> VLAPolicy:
    """A policy from a config mapping (hydra's ``policy`` node).

    ``pretrained: <dir>`` loads a saved policy (``finetune``/``lora``/``device`` still apply); otherwise a
    fresh one is built from the family's keys (see TINY_DEFAULTS / OPENVLA_DEFAULTS).
    """
    cfg = dict(cfg)
    family = cfg.get("family", "tiny")
    if cfg.get("pretrained"):
        return load_policy(
            cfg["pretrained"], finetune=cfg.get("finetune"), lora=cfg.get("lora"), device=cfg.get("device")
        )
    return _family_class(family).build(cfg)  # type: ignore[attr-defined]
