"""TinyVLAPolicy: the built-in CPU-sized VLA behind the shared policy interface."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from vla_razor.data.normalization import ActionNormStats
from vla_razor.errors import BadInputError
from vla_razor.policies.base import (
    BASE_DIR,
    PolicySettings,
    VLAPolicy,
    restore_backbone,
)
from vla_razor.policies.batch import PolicyBatch, left_pad_prompts
from vla_razor.policies.inputs import check_instructions, get_image, get_proprio
from vla_razor.policies.lora import LoraSettings
from vla_razor.policies.tiny.configuration_tiny_vla import TinyPolicyConfig, TinyVLAConfig
from vla_razor.policies.tiny.modeling_tiny_vla import TinyVLAForActionPrediction
from vla_razor.policies.tiny.processing_tiny_vla import build_tokenizer, split_words


class TinyVLAPolicy(VLAPolicy):
    family = "tiny"

    def __init__(
        self,
        model: TinyVLAForActionPrediction,
        tokenizer: PreTrainedTokenizerFast,
        settings: PolicySettings,
        norm_stats: ActionNormStats,
        adapter_dir: Path | None = None,
    ) -> None:
        vocab_size = model.config.text_config.vocab_size
        super().__init__(model, settings, norm_stats, vocab_size, adapter_dir)
        self.tokenizer = tokenizer
        self._vocab = tokenizer.get_vocab()
        self._prompt_cache: dict[str, list[int]] = {}
        self._warned_unknown = False

    # ----- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, cfg: Mapping[str, Any]) -> TinyVLAPolicy:
        """A freshly initialised tiny VLA; ``cfg`` holds :class:`TinyPolicyConfig` keys (the rest default)."""
        c = TinyPolicyConfig.from_mapping(cfg)
        torch.manual_seed(int(c.seed))
        tokenizer = build_tokenizer(c.extra_words)
        config = TinyVLAConfig(
            image_keys=c.image_keys,
            image_size=c.image_size,
            use_proprio=c.use_proprio,
            proprio_dim=c.proprio_dim,
            vision_channels=c.vision_channels,
            vision_grid=c.vision_grid,
            text_config={
                "vocab_size": len(tokenizer),
                "hidden_size": c.hidden_size,
                "intermediate_size": c.intermediate_size,
                "num_hidden_layers": c.num_layers,
                "num_attention_heads": c.num_heads,
                "num_key_value_heads": c.num_kv_heads,
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
            },
            prompt_template=c.instruction_template,
        )
        model = TinyVLAForActionPrediction(config).to(c.device)
        if c.norm_stats is None:
            stats = ActionNormStats.identity(config.action_dim)
        elif isinstance(c.norm_stats, ActionNormStats):
            stats = c.norm_stats
        else:
            stats = ActionNormStats.from_dict(c.norm_stats)
        settings = PolicySettings(
            family="tiny",
            finetune=c.finetune,
            lora=LoraSettings.from_mapping(c.lora) if c.finetune == "lora" else None,
            image_keys=list(c.image_keys),
            image_size=int(c.image_size),
            use_proprio=bool(c.use_proprio),
            instruction_template=c.instruction_template,
            value_head_dims=list(c.value_head_dims),
            render_profile=c.render_profile,
            decode=c.decode,
        )
        return cls(model, tokenizer, settings, stats)

    @classmethod
    def from_saved(
        cls,
        path: Path,
        record: Mapping[str, Any],
        finetune: str | None = None,
        lora: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> TinyVLAPolicy:
        base = path / BASE_DIR
        model = TinyVLAForActionPrediction.from_pretrained(str(base))
        model.to(device or "cpu")
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(base))
        saved = PolicySettings.from_dict(record)
        model, settings, adapter_dir = restore_backbone(model, saved, path, finetune, lora)
        policy = cls(model, tokenizer, settings, ActionNormStats.from_dict(record["norm_stats"]), adapter_dir)
        policy.load_value_head(path)
        return policy

    # ----- inputs ---------------------------------------------------------------------------------
    def _prompt_ids(self, instruction: str) -> list[int]:
        cached = self._prompt_cache.get(instruction)
        if cached is not None:
            return cached
        words = split_words(instruction)
        unknown = [w for w in words if w not in self._vocab]
        if len(unknown) == len(words):
            raise BadInputError(
                f"instruction {instruction!r} has only words unknown to the tiny VLA vocabulary ({unknown[:5]}); "
                f"build the policy with extra_words=[...] covering them"
            )
        if unknown and not self._warned_unknown:
            warnings.warn(f"instruction {instruction!r}: unknown words {unknown} map to <unk>", stacklevel=3)
            self._warned_unknown = True
        prompt = self.settings.instruction_template.format(instruction=instruction.strip())
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        self._prompt_cache[instruction] = ids
        return ids

    def prepare(self, obs: Mapping[str, np.ndarray], instructions: Sequence[str]) -> PolicyBatch:
        texts = check_instructions(instructions)
        b = len(texts)
        size = self.settings.image_size
        images = [get_image(obs, key, b, size) for key in self.settings.image_keys]
        # [B, H, W, 3] per camera -> uint8 [B, 3 * cameras, H, W]; scaling happens in the model.
        pixels = torch.cat(
            [torch.from_numpy(np.ascontiguousarray(im)).permute(0, 3, 1, 2) for im in images], 1
        )
        proprio = None
        if self.settings.use_proprio:
            proprio = torch.from_numpy(get_proprio(obs, b, self.model.config.proprio_dim))
        ids, mask = left_pad_prompts(
            [self._prompt_ids(t) for t in texts], self.tokenizer.bos_token_id, self.tokenizer.pad_token_id
        )
        batch = PolicyBatch(ids, mask, pixels, proprio, pad_token_id=self.tokenizer.pad_token_id)
        return batch.to(self.device)

    def _embed_prefix(self, model: nn.Module, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return model.embed_multimodal(
            batch.input_ids, batch.attention_mask, batch.pixel_values, batch.proprio
        )

    # ----- persistence ----------------------------------------------------------------------------
    def _save_backbone(
        self, path: Path, state_dict: dict[str, torch.Tensor] | None, weights_changed: bool
    ) -> dict[str, Any]:
        # A few MB: the tiny VLA always writes its base so a saved policy is self-contained.
        model = self.model
        model.config.norm_stats = self.norm_stats.to_dict()
        model.save_pretrained(str(path), state_dict=state_dict, safe_serialization=True)
        self.tokenizer.save_pretrained(str(path))
        return {}
