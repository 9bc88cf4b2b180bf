"""Mini OpenVLA network with OpenVLA's I/O and OpenVLA's loading quirks (remote code, stand-alone).

Same attribute names and forward contract as ``PrismaticForConditionalGeneration``: ``pixel_values``
[B, 6, 224, 224] (two normalisations of one image, channel-fused), ``input_ids``/``attention_mask``,
patch embeddings inserted after <s>, logits over [<s>, patches, text] positions, 32064 wide.

Upstream quirks kept on purpose, because they decide whether a loader works with the real checkpoint:
- ``_supports_sdpa`` is a property that reads ``self.language_model``. transformers >= 4.54 checks
  attention support inside ``PreTrainedModel.__init__``, before ``language_model`` exists, so loading
  with ``attn_implementation=None`` or ``"sdpa"`` raises AttributeError (openvla-oft issue 108);
- the language model is built with the config's ``_attn_implementation``;
- no ``GenerationMixin`` base (transformers >= 4.50 no longer adds it to ``PreTrainedModel``);
- ``vocab_size`` for detokenisation excludes the multiple-of-64 padding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    PreTrainedModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_mini_openvla import MiniOpenVLAConfig


class MiniConvFusedBackbone(nn.Module):
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


class MiniViTFusedBackbone(nn.Module):
    """DINOv2 (with registers) + SigLIP towers; like OpenVLA, patch features of each tower's
    second-to-last layer (class and register tokens dropped), concatenated per patch."""

    def __init__(self, config: MiniOpenVLAConfig) -> None:
        super().__init__()
        dino = Dinov2WithRegistersConfig(**config.featurizer_config)
        siglip = SiglipVisionConfig(**config.fused_featurizer_config)
        self.featurizer = Dinov2WithRegistersModel(dino)
        self.fused_featurizer = SiglipVisionModel(siglip)
        self._skip = 1 + dino.num_register_tokens
        self.embed_dim = dino.hidden_size + siglip.hidden_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(pixel_values, [3, 3], dim=1)
        fa = self.featurizer(pixel_values=a, output_hidden_states=True).hidden_states[-2][:, self._skip :]
        fb = self.fused_featurizer(pixel_values=b, output_hidden_states=True).hidden_states[-2]
        return torch.cat([fa, fb], dim=2)


class MiniProjector(nn.Module):
    """OpenVLA's fused projector: vision_dim -> 4 * vision_dim -> llm_dim -> llm_dim, GELU between."""

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.fc3 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()
        self.act_fn2 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(x)))))


class MiniOpenVLAPreTrainedModel(PreTrainedModel):
    config_class = MiniOpenVLAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MiniProjector"]
    _skip_keys_device_placement = "past_key_values"
    _supports_flash_attn_2 = True

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Embedding):
            module.weight.data.normal_(0.0, 0.02)
            if getattr(module, "bias", None) is not None:
                module.bias.data.zero_()

    @property
    def _supports_sdpa(self) -> bool:
        """As upstream: reads the language model, which does not exist yet while __init__ runs."""
        return self.language_model._supports_sdpa


class MiniOpenVLAForActionPrediction(MiniOpenVLAPreTrainedModel):
    def __init__(self, config: MiniOpenVLAConfig) -> None:
        super().__init__(config)
        if config.vision_backbone == "vit":
            self.vision_backbone: nn.Module = MiniViTFusedBackbone(config)
        else:
            self.vision_backbone = MiniConvFusedBackbone(config)
        self.projector = MiniProjector(self.vision_backbone.embed_dim, config.text_config.hidden_size)
        self.language_model = AutoModelForCausalLM.from_config(
            config.text_config, attn_implementation=config._attn_implementation
        )
        self.norm_stats = config.norm_stats
        self.pad_token_id = config.pad_token_id
        # As OpenVLA: the detokenisation vocab excludes the multiple-of-64 padding.
        self.vocab_size = config.text_config.vocab_size - config.pad_to_multiple_of
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

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
