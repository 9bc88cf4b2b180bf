"""Configuration of the tiny VLA: a CPU-sized stand-in with OpenVLA's shape (vision prefix + Llama LM)."""

from __future__ import annotations

from typing import Any

from transformers import LlamaConfig, PretrainedConfig

OPENVLA_PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"


class TinyVLAConfig(PretrainedConfig):
    model_type = "tiny_vla"
    # transformers walks sub-configs through this mapping when (de)serialising.
    sub_configs = {"text_config": LlamaConfig}

    def __init__(
        self,
        image_keys: list[str] | tuple[str, ...] = ("agentview_image",),
        image_size: int = 64,
        use_proprio: bool = False,
        proprio_dim: int = 9,
        vision_channels: list[int] | tuple[int, ...] = (32, 64, 128),
        vision_grid: int = 4,
        text_config: dict[str, Any] | LlamaConfig | None = None,
        n_action_bins: int = 256,
        action_dim: int = 7,
        norm_stats: dict[str, Any] | None = None,
        prompt_template: str = OPENVLA_PROMPT_TEMPLATE,
        **kwargs: Any,
    ) -> None:
        self.image_keys = list(image_keys)
        self.image_size = int(image_size)
        self.use_proprio = bool(use_proprio)
        self.proprio_dim = int(proprio_dim)
        self.vision_channels = list(vision_channels)
        self.vision_grid = int(vision_grid)
        if isinstance(text_config, LlamaConfig):
            self.text_config = text_config
        else:
            defaults: dict[str, Any] = {
                "vocab_size": 1024,
                "hidden_size": 256,
                "intermediate_size": 688,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "max_position_embeddings": 256,
                "tie_word_embeddings": False,
            }
            defaults.update(text_config or {})
            self.text_config = LlamaConfig(**defaults)
        self.n_action_bins = int(n_action_bins)
        self.action_dim = int(action_dim)
        # Stored in the model config too (not only the policy JSON): a bare model dir still decodes.
        self.norm_stats = norm_stats
        self.prompt_template = prompt_template
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def num_vision_tokens(self) -> int:
        per_camera = self.vision_grid * self.vision_grid
        return per_camera * len(self.image_keys) + (1 if self.use_proprio else 0)
