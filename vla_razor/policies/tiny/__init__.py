"""The tiny VLA (configuration / modeling / processing split, LeRobot style), registered with the Auto* classes."""

import transformers
from transformers import AutoConfig, AutoModel

from vla_razor.policies.tiny.configuration_tiny_vla import (
    OPENVLA_PROMPT_TEMPLATE,
    TinyPolicyConfig,
    TinyVLAConfig,
)
from vla_razor.policies.tiny.modeling_tiny_vla import TinyVLAForActionPrediction
from vla_razor.policies.tiny.processing_tiny_vla import build_tokenizer

# Registration makes `AutoModel.from_pretrained(dir)` work on a saved tiny VLA once this is imported.
AutoConfig.register(TinyVLAConfig.model_type, TinyVLAConfig, exist_ok=True)
AutoModel.register(TinyVLAConfig, TinyVLAForActionPrediction, exist_ok=True)
# transformers 4.57 deprecates AutoModelForVision2Seq and 5.x removes it for AutoModelForImageTextToText.
for _auto in ("AutoModelForVision2Seq", "AutoModelForImageTextToText"):
    if hasattr(transformers, _auto):
        getattr(transformers, _auto).register(TinyVLAConfig, TinyVLAForActionPrediction, exist_ok=True)

__all__ = [
    "OPENVLA_PROMPT_TEMPLATE",
    "TinyPolicyConfig",
    "TinyVLAConfig",
    "TinyVLAForActionPrediction",
    "build_tokenizer",
]
