"""Configuration of the tiny VLA: a CPU-sized stand-in with OpenVLA's shape (vision prefix + Llama LM).

Two classes, one source of truth. :class:`TinyPolicyConfig` is the typed config a user writes (hydra's
schema of ``configs/policy/tiny_scratch.yaml``, every key ``build_policy`` accepts for family ``tiny``);
its defaults are the committed pi0's architecture. :class:`TinyVLAConfig` is the transformers config
saved with the weights; its defaults are read from :class:`TinyPolicyConfig`, never written twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from transformers import LlamaConfig, PretrainedConfig

from vla_razor.errors import BadInputError

OPENVLA_PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"


@dataclass
class TinyPolicyConfig:
    """Every setting of a freshly built tiny VLA; the defaults are pi0's (vla_razor/assets/pi0_tiny)."""

    family: str = "tiny"
    """the policy family"""
    image_keys: list[str] = field(default_factory=lambda: ["agentview_image", "robot0_eye_in_hand_image"])
    """the camera images the policy sees (<camera>_image), one vision encoder each"""
    image_size: int = 64
    """side of the square camera images in pixels"""
    use_proprio: bool = True
    """add one proprioception token (end-effector position, quaternion, gripper)"""
    proprio_dim: int = 9
    """length of the proprioception vector"""
    vision_channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """channels of the CNN's stages"""
    vision_grid: int = 3
    """vision_grid x vision_grid visual tokens per camera"""
    hidden_size: int = 192
    """width of the Llama decoder"""
    num_layers: int = 3
    """decoder layers"""
    num_heads: int = 4
    """attention heads"""
    num_kv_heads: int = 4
    """key/value heads (grouped-query attention when fewer than num_heads)"""
    intermediate_size: int = 512
    """hidden width of the decoder's MLP"""
    value_head_dims: list[int] = field(default_factory=lambda: [128, 32])
    """hidden layers of the value head's MLP"""
    extra_words: list[str] = field(default_factory=list)
    """words added to the tokenizer (the instructions of the tasks the policy will see)"""
    instruction_template: str = OPENVLA_PROMPT_TEMPLATE
    """the prompt; {instruction} is replaced by the task's instruction"""
    norm_stats: Any = None
    """action normalisation statistics {q01, q99, mask} (null: identity)"""
    finetune: str = "full"
    """lora | full | frozen"""
    lora: Any = None
    """LoRA settings when finetune=lora: {r, alpha, dropout, target_modules}"""
    seed: int = 0
    """seed of the weight initialisation"""
    device: str = "cpu"
    """torch device"""
    render_profile: str = "full"
    """the render profile of the images it trains on (full | fast; vla_razor/envs/render_profiles.py)"""
    decode: str = "eager"
    """how act() runs the decoder: eager | static (preallocated KV cache) | compiled (static + torch.compile
    of the one-token step); the same tokens in every mode (vla_razor/policies/decoding.py)"""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TinyPolicyConfig:
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise BadInputError(
                f"unknown tiny policy key(s) {', '.join(unknown)}; valid: {', '.join(valid)}, "
                "or pretrained=DIR to load a saved policy"
            )
        return cls(**values)


_PI0 = TinyPolicyConfig()


class TinyVLAConfig(PretrainedConfig):
    model_type = "tiny_vla"
    # transformers walks sub-configs through this mapping when (de)serialising.
    sub_configs = {"text_config": LlamaConfig}

    def __init__(
        self,
        image_keys: list[str] | tuple[str, ...] = tuple(_PI0.image_keys),
        image_size: int = _PI0.image_size,
        use_proprio: bool = _PI0.use_proprio,
        proprio_dim: int = _PI0.proprio_dim,
        vision_channels: list[int] | tuple[int, ...] = tuple(_PI0.vision_channels),
        vision_grid: int = _PI0.vision_grid,
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
                "vocab_size": 1024,  # the policy sets the real size from its tokenizer
                "hidden_size": _PI0.hidden_size,
                "intermediate_size": _PI0.intermediate_size,
                "num_hidden_layers": _PI0.num_layers,
                "num_attention_heads": _PI0.num_heads,
                "num_key_value_heads": _PI0.num_kv_heads,
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
