"""Write a mini OpenVLA checkpoint in OpenVLA's on-disk format (config.json with auto_map -> the remote
code modules beside it, a Llama-id-compatible tokenizer, a processor for AutoProcessor).

It lets every part of the OpenVLA wrapper that does not need the 15 GB weights run in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from vla_razor.policies.mini_openvla.configuration_mini_openvla import MiniOpenVLAConfig
from vla_razor.policies.mini_openvla.modeling_mini_openvla import MiniOpenVLAForActionPrediction
from vla_razor.policies.mini_openvla.processing_mini_openvla import (
    MiniOpenVLAImageProcessor,
    MiniOpenVLAProcessor,
)
from vla_razor.policies.openvla import DTYPE_KEY, registrable_auto_class
from vla_razor.policies.tiny.processing_tiny_vla import BASE_WORDS, word_level_tokenizer

LLAMA_VOCAB = 32000
EMPTY_TOKEN_ID = 29871  # Llama's "▁", which OpenVLA appends after "Out:"


def _llama_like_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer on Llama-2's id layout: <unk>=0 <s>=1 </s>=2, "▁"=29871, <PAD>=32000."""
    tokens = ["<unk>", "<s>", "</s>"] + list(dict.fromkeys(BASE_WORDS))
    vocab = {t: i for i, t in enumerate(tokens)}
    for i in range(len(tokens), LLAMA_VOCAB):
        vocab[f"<filler_{i}>"] = i
    del vocab[f"<filler_{EMPTY_TOKEN_ID}>"]
    vocab["▁"] = EMPTY_TOKEN_ID
    vocab["<PAD>"] = LLAMA_VOCAB
    # OpenVLA's released tokenizer pads on the right.
    return word_level_tokenizer(vocab, pad_token="<PAD>", padding_side="right")


def build_mini_openvla(
    *,
    seed: int = 0,
    norm_stats: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **config: Any,
) -> tuple[MiniOpenVLAForActionPrediction, MiniOpenVLAProcessor]:
    """(model, processor) in memory; ``config`` goes to :class:`MiniOpenVLAConfig` (e.g.
    ``vision_backbone="vit", text_config=LLAMA2_7B`` for a random model of OpenVLA-7B's shape).

    The weights are created directly on ``device`` in ``dtype``: a 7B model initialised on a CPU in
    float32 would take minutes and 28 GB first.
    """
    torch.manual_seed(seed)
    cfg = MiniOpenVLAConfig(norm_stats=norm_stats, **config)
    setattr(cfg.text_config, DTYPE_KEY, dtype)  # the LLM follows its sub-config's dtype (see the loader)
    # Upstream's _supports_sdpa property cannot be read during __init__ (see the modeling module), so
    # the model is built eager, exactly as a loader must load it; the LLM's attention is switched later.
    cfg._attn_implementation = "eager"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = MiniOpenVLAForActionPrediction(cfg)
    finally:
        torch.set_default_dtype(previous)
    processor = MiniOpenVLAProcessor(
        image_processor=MiniOpenVLAImageProcessor(), tokenizer=_llama_like_tokenizer()
    )
    return model.eval(), processor


def build_mini_openvla_checkpoint(
    path: str | Path,
    *,
    seed: int = 0,
    norm_stats: dict[str, Any] | None = None,
    **config: Any,
) -> Path:
    """Write the checkpoint to ``path`` and return it. ``norm_stats`` is OpenVLA's {key: {"action": ...}}."""
    out = Path(path)
    model, processor = build_mini_openvla(seed=seed, norm_stats=norm_stats, **config)
    # register_for_auto_class makes save_pretrained copy the module files and write auto_map entries.
    MiniOpenVLAConfig.register_for_auto_class()
    MiniOpenVLAForActionPrediction.register_for_auto_class(registrable_auto_class())
    MiniOpenVLAImageProcessor.register_for_auto_class("AutoImageProcessor")
    MiniOpenVLAProcessor.register_for_auto_class("AutoProcessor")
    # As OpenVLA's released config.json (its conversion script pins it): text_config says bfloat16
    # whatever the weights are, which is what makes a float32 load a trap for loaders.
    setattr(model.config.text_config, DTYPE_KEY, torch.bfloat16)
    model.save_pretrained(str(out), safe_serialization=True)
    processor.save_pretrained(str(out))
    return out
