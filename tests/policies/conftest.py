"""Fixtures shared by the policy tests."""

from __future__ import annotations

import pytest
import torch

from tests.policies.helpers import make_policy
from vla_razor.policies import VLAPolicy


@pytest.fixture(scope="module")
def lora_policy() -> VLAPolicy:
    policy = make_policy(finetune="lora", lora={"r": 4, "alpha": 8})
    # Non-zero adapters: a fresh LoRA (B = 0) would make pi equal pi0 and hide bugs.
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.2)
    return policy
