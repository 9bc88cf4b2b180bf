"""build_policy (from a config mapping) and load_policy (from a saved directory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from vla_razor.errors import BadInputError
from vla_razor.file_checks import check_policy_files
from vla_razor.policies.base import VLAPolicy, read_policy_record
from vla_razor.policies.decoding import check_decode_mode
from vla_razor.policies.openvla import OPENVLA_DEFAULTS, OpenVLAPolicy
from vla_razor.policies.tiny.configuration_tiny_vla import TinyPolicyConfig
from vla_razor.policies.tiny.policy import TinyVLAPolicy

FAMILIES: dict[str, type[VLAPolicy]] = {"tiny": TinyVLAPolicy, "openvla": OpenVLAPolicy}
# Each family's one source of defaults (hydra registers the same objects as schemas).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": asdict(TinyPolicyConfig()),
    "openvla": dict(OPENVLA_DEFAULTS),
}
# The keys that apply to a saved policy (pretrained=DIR): how it is fine-tuned and where it runs.
LOAD_KEYS = ("family", "pretrained", "finetune", "lora", "device", "decode")


def _family_class(family: str) -> type[VLAPolicy]:
    if family not in FAMILIES:
        raise BadInputError(f"unknown policy family {family!r}; valid: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def load_policy(
    path: str | Path,
    *,
    finetune: str | None = None,
    lora: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    decode: str | None = None,
) -> VLAPolicy:
    """Rebuild a policy saved with ``save_pretrained``; optionally switch its fine-tuning mode and how it
    decodes (``decode``: see :mod:`vla_razor.policies.decoding`; None keeps the saved one)."""
    p = Path(path)
    record = read_policy_record(p)
    check_policy_files(p)  # a cut weights file is one line naming it, not a safetensors traceback
    cls = _family_class(record.get("family", ""))
    if decode is not None:
        check_decode_mode(decode)  # before loading weights: a typo fails in one line, at once
    policy = cls.from_saved(p, record, finetune=finetune, lora=lora, device=device)  # type: ignore[attr-defined]
    if decode is not None:
        policy.set_decode(decode)
    return policy


def build_policy(cfg: Mapping[str, Any]) -> VLAPolicy:
    """A policy from a config mapping (hydra's ``policy`` node).

    ``pretrained: <dir>`` loads a saved policy, of which only ``LOAD_KEYS`` can change anything; otherwise
    a fresh one is built from the family's typed config (TinyPolicyConfig / OPENVLA_DEFAULTS), which
    rejects unknown keys.
    """
    cfg = dict(cfg)
    family = cfg.get("family", "tiny")
    cls = _family_class(family)
    if cfg.get("pretrained"):
        # A saved policy carries its own architecture: a key set to anything but the family default
        # would silently not apply, so it is an error (hydra's schemas fill in the defaults themselves).
        defaults = FAMILY_DEFAULTS[family]
        ignored = sorted(
            k
            for k, v in cfg.items()
            if k not in LOAD_KEYS and v is not None and (k not in defaults or v != defaults[k])
        )
        if ignored:
            raise BadInputError(
                f"policy key(s) {', '.join(ignored)} have no effect on the saved policy "
                f"pretrained={cfg['pretrained']!r}; valid with pretrained: {', '.join(LOAD_KEYS)}"
            )
        policy = load_policy(
            cfg["pretrained"],
            finetune=cfg.get("finetune"),
            lora=cfg.get("lora"),
            device=cfg.get("device"),
            decode=cfg.get("decode"),
        )
    else:
        policy = cls.build(cfg)  # type: ignore[attr-defined]
    if policy.finetune == "full" and policy.settings.reference is None:
        policy.settings.reference = reference_spec(cfg)
    return policy


def reference_spec(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The build_policy mapping that rebuilds the pi0 a config starts from, frozen.

    A saved policy is named by its absolute path; a fresh build by its own (seeded) keys; an OpenVLA
    checkpoint by its source. ``device`` is left to whoever rebuilds it.
    """
    spec = {k: v for k, v in cfg.items() if k not in {"device", "lora"}}
    if spec.get("pretrained"):
        spec = {"pretrained": str(Path(spec["pretrained"]).expanduser().resolve())}
    return {**spec, "finetune": "frozen"}


def rebuild_reference(policy: VLAPolicy, device: str | torch.device | None = None) -> VLAPolicy:
    """pi0 of a full fine-tune, rebuilt from ``policy.settings.reference`` (see :func:`reference_spec`)."""
    spec = policy.settings.reference
    if spec is None:
        raise BadInputError(
            "this full fine-tune records no reference policy (saved before vla-razor recorded one); "
            "pass policy.pretrained=<pi0 dir> so pi0 can be rebuilt"
        )
    return build_policy({**spec, "device": device} if device is not None else spec)
