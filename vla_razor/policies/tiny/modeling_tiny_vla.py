"""The tiny VLA network: per-camera patch CNN -> MLP projector -> prefix embeddings -> Llama decoder.

It mirrors OpenVLA's layout on purpose (vision embeddings inserted right after <s>, a Llama LM whose
last 256 vocabulary ids are the action bins, ``language_model`` / ``vision_backbone`` / ``projector``
attribute names) so the policy layer drives both through one code path.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaForCausalLM, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from vla_razor.policies.tiny.configuration_tiny_vla import TinyVLAConfig


class CameraEncoder(nn.Module):
    """Strided convolutions then an adaptive pool: a fixed ``grid x grid`` token count at any image size."""

    def __init__(self, channels: list[int], grid: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(channels):
            # A 4x4/stride-2 first layer acts as a patch embedding; later ones are 3x3/stride-2.
            k = 4 if i == 0 else 3
            layers += [nn.Conv2d(in_ch, out_ch, k, stride=2, padding=1), nn.GroupNorm(8, out_ch), nn.GELU()]
            in_ch = out_ch
        layers.append(nn.AdaptiveAvgPool2d(grid))
        self.net = nn.Sequential(*layers)
        self.out_dim = in_ch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.net(images)  # [B, C, g, g]
        return feats.flatten(2).transpose(1, 2)  # [B, g*g, C]


class TinyVisionBackbone(nn.Module):
    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__()
        self.num_cameras = len(config.image_keys)
        self.cameras = nn.ModuleList(
            CameraEncoder(config.vision_channels, config.vision_grid) for _ in range(self.num_cameras)
        )
        self.embed_dim = self.cameras[0].out_dim
        # Without it the LM could not tell which camera a token came from beyond its sequence position.
        self.camera_embedding = nn.Parameter(torch.zeros(self.num_cameras, self.embed_dim))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, 3 * num_cameras, H, W] (uint8 or float in [-1, 1]) -> [B, N, embed_dim]."""
        if pixel_values.dtype == torch.uint8:
            # Images travel as uint8 (4x smaller rollout buffers); scale here, once.
            pixel_values = pixel_values.float() / 127.5 - 1.0
        chunks = pixel_values.split(3, dim=1)
        tokens = [
            enc(x) + self.camera_embedding[i]
            for i, (enc, x) in enumerate(zip(self.cameras, chunks, strict=True))
        ]
        return torch.cat(tokens, dim=1)


class TinyProjector(nn.Module):
    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, llm_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(llm_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TinyVLAPreTrainedModel(PreTrainedModel):
    config_class = TinyVLAConfig
    base_model_prefix = "tiny_vla"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ["LlamaDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.text_config.initializer_range
        if isinstance(module, nn.Linear | nn.Conv2d):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)


class TinyVLAForActionPrediction(TinyVLAPreTrainedModel):
    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__(config)
        llm_dim = config.text_config.hidden_size
        self.vision_backbone = TinyVisionBackbone(config)
        self.projector = TinyProjector(self.vision_backbone.embed_dim, llm_dim)
        self.proprio_proj = nn.Linear(config.proprio_dim, llm_dim) if config.use_proprio else None
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def vision_prefix(self, pixel_values: torch.Tensor, proprio: torch.Tensor | None) -> torch.Tensor:
        """Projected vision (and optional proprio) tokens [B, num_vision_tokens, hidden]."""
        prefix = self.projector(self.vision_backbone(pixel_values))
        if self.proprio_proj is not None:
            if proprio is None:
                raise ValueError("this tiny VLA was built with use_proprio=True but no proprio was given")
            prefix = torch.cat([prefix, self.proprio_proj(proprio.to(prefix.dtype))[:, None]], dim=1)
        return prefix

    def embed_multimodal(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        proprio: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[<s>, vision..., rest of input_ids] embeddings and mask, OpenVLA's insertion point."""
        text = self.get_input_embeddings()(input_ids)
        prefix = self.vision_prefix(pixel_values, proprio).to(text.dtype)
        ones = attention_mask.new_ones(prefix.shape[:2])
        embeds = torch.cat([text[:, :1], prefix, text[:, 1:]], dim=1)
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        return embeds, mask

    def forward(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        **kwargs: object,
    ) -> CausalLMOutputWithPast:
        """Plain HF forward: logits over [<s>, vision tokens, text] positions (like OpenVLA's)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeds, mask = self.embed_multimodal(input_ids, attention_mask, pixel_values, proprio)
        # Positions count only real tokens, so padding anywhere leaves every real token's position as
        # it would be in an unpadded sequence.
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, **kwargs
        )
