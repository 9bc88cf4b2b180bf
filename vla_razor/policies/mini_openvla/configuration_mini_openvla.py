"""Config of the mini OpenVLA: OpenVLA's config fields at any size (remote code, stand-alone module).

This file is copied into test checkpoints and loaded with ``trust_remote_code``; it imports nothing
from vla_razor, exactly like OpenVLA's own ``configuration_prismatic.py``.

Two vision backbones: ``conv`` (one strided convolution per half of the fused input: cheap, for
tests) and ``vit`` (transformers' DINOv2-with-registers and SigLIP vision towers, as OpenVLA fuses them;
at their default sizes, ViT-L/14 and So400m/14, which with ``text_config=LLAMA2_7B`` gives a model of
OpenVLA-7B's shape for GPU benchmarks, with random weights).
"""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, PretrainedConfig

# Llama-2-7B's shape, with OpenVLA's vocabulary: 32000 tokens + <PAD>, padded to a multiple of 64.
LLAMA2_7B: dict[str, Any] = {
    "vocab_size": 32064,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 2048,
}
# OpenVLA's towers: DINOv2 ViT-L/14 with 4 registers, SigLIP So400m/14, both at 224 px.
DINOV2_VIT_L: dict[str, Any] = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 224,
    "num_register_tokens": 4,
}
SIGLIP_SO400M: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "image_size": 224,
}


class MiniOpenVLAConfig(PretrainedConfig):
    # No `sub_configs` declaration, as upstream's OpenVLAConfig (written for transformers 4.40): newer
    # transformers then do not pass from_pretrained's dtype down to text_config, and the LLM is built in
    # the dtype text_config pins. A loader has to handle that, so the mini must reproduce it.
    model_type = "mini_openvla"

    def __init__(
        self,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        norm_stats: dict[str, Any] | None = None,
        n_action_bins: int = 256,
        image_sizes: list[int] | None = None,
        patch_size: int = 28,
        vision_dim: int = 32,
        vision_backbone: str = "conv",
        featurizer_config: dict[str, Any] | None = None,
        fused_featurizer_config: dict[str, Any] | None = None,
        use_fused_vision_backbone: bool = True,
        pad_token_id: int = 32000,
        pad_to_multiple_of: int = 64,
        **kwargs: Any,
    ) -> None:
        if isinstance(text_config, LlamaConfig):
            self.text_config = text_config
        else:
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
        if vision_backbone not in ("conv", "vit"):
            raise ValueError(f"vision_backbone must be 'conv' or 'vit', got {vision_backbone!r}")
        self.norm_stats = norm_stats
        self.n_action_bins = n_action_bins
        self.image_sizes = list(image_sizes or [224, 224])
        self.patch_size = patch_size
        self.vision_dim = vision_dim
        self.vision_backbone = vision_backbone
        self.featurizer_config = {**DINOV2_VIT_L, **(featurizer_config or {})}
        self.fused_featurizer_config = {**SIGLIP_SO400M, **(fused_featurizer_config or {})}
        self.use_fused_vision_backbone = use_fused_vision_backbone
        self.pad_to_multiple_of = pad_to_multiple_of
        super().__init__(pad_token_id=pad_token_id, **kwargs)
