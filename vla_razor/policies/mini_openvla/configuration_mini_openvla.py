"""Config of the mini OpenVLA: OpenVLA's config fields at toy size (remote code, stand-alone module).

This file is copied into test checkpoints and loaded with ``trust_remote_code``; it imports nothing
from vla_razor, exactly like OpenVLA's own ``configuration_prismatic.py``.
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, PretrainedConfig


class MiniOpenVLAConfig(PretrainedConfig):
    model_type = "mini_openvla"
    sub_configs = {"text_config": LlamaConfig}

    def __init__(
        self,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        norm_stats: dict[str, Any] | None = None,
        n_action_bins: int = 256,
        image_sizes: list[int] | None = None,
        patch_size: int = 28,
        vision_dim: int = 32,
        use_fused_vision_backbone: bool = True,
        pad_token_id: int = 32000,
        pad_to_multiple_of: int = 64,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, LlamaConfig):
            self.text_config = text_config
        else:
            # Llama-2's 32000 tokens + <PAD>, padded to a multiple of 64: 32064 logits, as in OpenVLA.
            defaults: dict[str, Any] = {
                "vocab_size": 32064,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "max_position_embeddings": 512,
                "pad_token_id": pad_token_id,
            }
            defaults.update(text_config or {})
            self.text_config = LlamaConfig(**defaults)
        self.norm_stats = norm_stats
        self.n_action_bins = n_action_bins
        self.image_sizes = list(image_sizes or [224, 224])
        self.patch_size = patch_size
        self.vision_dim = vision_dim
        self.use_fused_vision_backbone = use_fused_vision_backbone
        self.pad_to_multiple_of = pad_to_multiple_of
        super().__init__(pad_token_id=pad_token_id, **kwargs)
