"""Mini OpenVLA network with OpenVLA's I/O (remote code, stand-alone module).

Same attribute names and forward contract as ``PrismaticForConditionalGeneration``: ``pixel_values``
[B, 6, 224, 224] (two normalisations of one image, channel-fused), ``input_ids``/``attention_mask``,
patch embeddings inserted after <s>, logits over [<s>, patches, text] positions, 32064 wide.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_mini_openvla import MiniOpenVLAConfig


class MiniFusedVisionBackbone(nn.Module):
    """Two patch embeddings (stand-ins for DINOv2 and SigLIP), one per 3-channel half, concatenated."""

    def __init__(self, config: MiniOpenVLAConfig) -> None:
        super().__init__()
        p, d = config.patch_size, config.vision_dim
        self.featurizer = nn.Conv2d(3, d, p, stride=p)
        self.fused_featurizer = nn.Conv2d(3, d, p, stride=p)
        self.embed_dim = 2 * d

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(pixel_values, [3, 3], dim=1)
        fa = self.featurizer(a).flatten(2).transpose(1, 2)
        fb = self.fused_featurizer(b).flatten(2).transpose(1, 2)
        return torch.cat([fa, fb], dim=2)


class MiniProjector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MiniOpenVLAForActionPrediction(PreTrainedModel):
    config_class = MiniOpenVLAConfig
    base_model_prefix = "model"
    _supports_sdpa = True
    _no_split_modules = ["LlamaDecoderLayer"]

    def __init__(self, config: MiniOpenVLAConfig) -> None:
        super().__init__(config)
        self.vision_backbone = MiniFusedVisionBackbone(config)
        self.projector = MiniProjector(self.vision_backbone.embed_dim, config.text_config.hidden_size)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.norm_stats = config.norm_stats
        # As OpenVLA: the detokenisation vocab excludes the multiple-of-64 padding.
        self.vocab_size = config.text_config.vocab_size - config.pad_to_multiple_of
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Embedding):
            module.weight.data.normal_(0.0, 0.02)
            if getattr(module, "bias", None) is not None:
                module.bias.data.zero_()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if pixel_values is None:
            return self.language_model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        patches = self.projector(self.vision_backbone(pixel_values))
        text = self.get_input_embeddings()(input_ids)
        embeds = torch.cat([text[:, :1], patches.to(text.dtype), text[:, 1:]], dim=1)
        mask = None
        if attention_mask is not None:
            ones = attention_mask.new_ones(patches.shape[:2])
            mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        # Like OpenVLA: no position ids, so positions are simply 0..L-1 (right for unpadded inputs).
        return self.language_model(inputs_embeds=embeds, attention_mask=mask, **kwargs)
