"""VLA policies: one interface (prepare / act / score / reference / save) over the tiny VLA and OpenVLA."""

from vla_razor.policies.action_tokenizer import ActionTokenizer
from vla_razor.policies.base import ActOutput, PolicySettings, ScoreOutput, VLAPolicy
from vla_razor.policies.batch import PolicyBatch
from vla_razor.policies.factory import build_policy, load_policy
from vla_razor.policies.lora import LoraSettings

__all__ = [
    "ActOutput",
    "ActionTokenizer",
    "LoraSettings",
    "PolicyBatch",
    "PolicySettings",
    "ScoreOutput",
    "VLAPolicy",
    "build_policy",
    "load_policy",
]
