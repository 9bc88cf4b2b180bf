"""Hydra structured configs: the typed settings dataclasses registered as schemas of the YAML groups.

Each ``configs/trainer/<name>.yaml`` (and ``configs/policy/{tiny_scratch,openvla}.yaml``) starts its defaults list
with ``schema/<name>@_here_``: hydra then knows every key with its type and default (``--cfg job``
prints them all, ``trainer.gamma=0.9`` works without ``+``, ``trainer.lr=abc`` fails at start-up), while
the YAML only overrides. The dataclasses stay the single source of every default and of its meaning.
"""

from __future__ import annotations

from typing import Any

from hydra.core.config_store import ConfigStore

from vla_razor.policies.openvla import OPENVLA_DEFAULTS
from vla_razor.policies.tiny.configuration_tiny_vla import TinyPolicyConfig
from vla_razor.trainers.bc import BCSettings
from vla_razor.trainers.dagger import DaggerSettings
from vla_razor.trainers.ppo import PPOSettings
from vla_razor.trainers.rft import RFTSettings

SCHEMAS: dict[str, dict[str, Any]] = {
    "trainer": {"bc": BCSettings, "ppo": PPOSettings, "rft": RFTSettings, "dagger": DaggerSettings},
    # OpenVLA's keys and defaults live in one dict next to its loader; `pretrained` selects a saved one.
    "policy": {"tiny": TinyPolicyConfig, "openvla": {**OPENVLA_DEFAULTS, "pretrained": None}},
}


def register_schemas() -> None:
    """Store every schema under ``<group>/schema/<name>`` (idempotent: the store is a process singleton)."""
    store = ConfigStore.instance()
    for group, nodes in SCHEMAS.items():
        for name, node in nodes.items():
            store.store(group=f"{group}/schema", name=name, node=node)
