"""OpenVLA-7B (or a fine-tuned OpenVLA, or any checkpoint with its I/O) behind the shared interface.

OpenVLA's own ``predict_action`` handles one observation at a time. Here a batch is run by building the
multimodal embeddings ourselves from the checkpoint's ``vision_backbone``, ``projector`` and
``language_model`` (the attributes of ``PrismaticForConditionalGeneration``): ``[<s>, patches, pads,
prompt, "▁"]`` with positions counted over real tokens, so every row sees exactly what the unpadded
single-sample forward sees and all rows' action tokens start in the same column.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from packaging.version import Version
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoProcessor
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from vla_razor.data.normalization import ActionNormStats
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.policies.base import BASE_DIR, PolicySettings, VLAPolicy, restore_backbone
from vla_razor.policies.batch import PolicyBatch, left_pad_prompts
from vla_razor.policies.inputs import check_instructions, get_image
from vla_razor.policies.lora import LoraSettings
from vla_razor.policies.tiny.configuration_tiny_vla import OPENVLA_PROMPT_TEMPLATE

# Every key build_policy accepts for family "openvla", with its default.
OPENVLA_DEFAULTS: dict[str, Any] = {
    "family": "openvla",
    "model": "openvla/openvla-7b",  # hub id or local dir
    "dtype": "bfloat16",
    "load_in_4bit": False,
    "attn_implementation": None,  # the LLM's attention: None (= "sdpa"), "eager", "flash_attention_2"
    "unnorm_key": None,
    "norm_stats": None,  # our own {q01, q99, mask}; wins over the checkpoint's
    "image_keys": ["agentview_image"],
    "image_size": 224,
    "instruction_template": OPENVLA_PROMPT_TEMPLATE,
    "lowercase_instruction": True,  # OpenVLA's training instructions are lower case
    "empty_token_id": 29871,  # Llama's "▁": OpenVLA's predict_action appends it after "Out:"
    "action_adapter": "robosuite",  # the checkpoint's gripper convention: robosuite | openvla_libero
    "finetune": "lora",
    "lora": {"r": 32, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
    "value_head_dims": [512, 128],  # RL4VLA: 4096 -> 512 -> 128 -> 1
    "device": None,  # cuda when available
    "local_files_only": None,  # None: follow HF_HUB_OFFLINE
    "decode": "eager",  # eager | static | compiled: how act() runs the decoder (policies/decoding.py)
}
_LOADER_KEYS = ("dtype", "load_in_4bit", "attn_implementation", "local_files_only", "device")
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flex_attention")


def set_language_model_attention(model: nn.Module, implementation: str | None) -> str:
    """Switch the LLM inside an OpenVLA-format model to ``implementation`` (None: "sdpa").

    OpenVLA's remote code defines ``_supports_sdpa`` as a property that reads ``self.language_model``;
    transformers >= 4.54 evaluates it inside ``PreTrainedModel.__init__``, before that attribute exists,
    so ``from_pretrained`` with ``attn_implementation`` None or "sdpa" raises AttributeError
    (openvla-oft issue 108). The model is therefore always loaded "eager" and its language model, a
    plain Llama, switched afterwards: the attention it then runs is the one asked for.
    """
    impl = implementation or "sdpa"
    if impl not in ATTENTION_IMPLEMENTATIONS:
        raise BadInputError(
            f"attn_implementation={impl!r} is not one of {ATTENTION_IMPLEMENTATIONS} (or null)"
        )
    if impl.startswith("flash_attention") and importlib.util.find_spec("flash_attn") is None:
        raise BadInputError(
            f"attn_implementation={impl!r} needs the flash-attn package (pip install flash-attn)"
        )
    lm = model.language_model
    if hasattr(lm, "set_attn_implementation"):  # transformers >= 4.56 checks the LLM supports it
        lm.set_attn_implementation(impl)
    else:
        lm.config._attn_implementation = impl
    return impl


# OpenVLA's config.json names its model under AutoModelForVision2Seq, which transformers 4.57 deprecates
# and 5.x removes in favour of AutoModelForImageTextToText; either key is accepted.
AUTO_CLASS_KEYS = ("AutoModelForVision2Seq", "AutoModelForImageTextToText")


def registrable_auto_class() -> str:
    """The auto class this transformers accepts in ``register_for_auto_class`` (and so in auto_map)."""
    return next(name for name in AUTO_CLASS_KEYS if hasattr(transformers, name))


# from_pretrained's dtype argument (and PretrainedConfig's attribute) was torch_dtype before 4.56.
DTYPE_KEY = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"


def remote_model_class(target: str, offline: bool, config: Any | None = None) -> type[nn.Module]:
    """The checkpoint's own model class, named by its config's ``auto_map``.

    Resolved directly rather than through an auto class, whose name differs across transformers
    versions while OpenVLA's config.json names only ``AutoModelForVision2Seq``.
    """
    if config is None:
        config = AutoConfig.from_pretrained(target, trust_remote_code=True, local_files_only=offline)
    auto_map = getattr(config, "auto_map", None) or {}
    ref = next((auto_map[k] for k in AUTO_CLASS_KEYS if k in auto_map), None)
    if ref is None:
        raise BadInputError(
            f"{target!r} is not an OpenVLA-format checkpoint: its config.json auto_map has none of "
            f"{AUTO_CLASS_KEYS} (OpenVLA's remote code entry)"
        )
    cls = get_class_from_dynamic_module(ref, target, local_files_only=offline)
    # As the auto class would: save_pretrained then copies the remote code and writes auto_map, so a
    # saved full fine-tune or merged export loads like the original checkpoint.
    cls.register_for_auto_class(registrable_auto_class())
    return cls


def check_torchvision() -> None:
    """OpenVLA's remote code imports timm, which imports torchvision. A torchvision built for another
    variant of torch (e.g. PyPI's beside a CPU-only torch) fails on its C ops at import time, deep in
    the remote code; say so up front, with what to install."""
    if importlib.util.find_spec("torchvision") is None:
        return
    try:
        importlib.import_module("torchvision")
    except (RuntimeError, ImportError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadInputError(
            f"torchvision does not work beside torch {torch.__version__} ({first}); install the "
            "torchvision built for this torch (matching versions from the same index, e.g. "
            "`pip install torch==2.14.1 torchvision==0.29.1`), or uninstall torchvision for the mini checkpoint"
        ) from None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _where_looked(source: str) -> str:
    from huggingface_hub import constants

    cache = Path(constants.HF_HUB_CACHE) / f"models--{source.replace('/', '--')}"
    return (
        f"local path {Path(source).expanduser().resolve()} (missing), hub cache {cache}, "
        f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}"
    )


def load_openvla(source: str, c: Mapping[str, Any]) -> tuple[nn.Module, Any]:
    """(model, processor) from a hub id or a local dir; one-line error saying where it looked."""

    local = Path(source).expanduser()
    offline = _hub_offline() if c.get("local_files_only") is None else bool(c["local_files_only"])
    looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") != 1
    if not local.is_dir():
        if looks_like_path:
            raise MissingFileError(f"OpenVLA checkpoint dir {str(local.resolve())!r} does not exist")
        if offline:
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(source, "config.json"), str):
                raise MissingFileError(
                    f"OpenVLA weights {source!r} not available offline: looked in {_where_looked(source)}"
                )
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(c["dtype"])
    if dtype is None:
        raise BadInputError(f"dtype={c['dtype']!r} is not one of bfloat16, float16, float32")
    kwargs: dict[str, Any] = {
        DTYPE_KEY: dtype,
        "low_cpu_mem_usage": True,
        "trust_remote_code": True,
        "local_files_only": offline,
        # Always eager at load time: see set_language_model_attention for upstream's sdpa quirk.
        "attn_implementation": "eager",
    }
    device = c.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if c.get("load_in_4bit"):
        if importlib.util.find_spec("bitsandbytes") is None:
            raise BadInputError("load_in_4bit=True needs bitsandbytes: pip install 'vla-razor[openvla]'")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
        )
        kwargs["device_map"] = {"": device}
    target = str(local) if local.is_dir() else source
    check_torchvision()
    try:
        processor = AutoProcessor.from_pretrained(target, trust_remote_code=True, local_files_only=offline)
        config = AutoConfig.from_pretrained(target, trust_remote_code=True, local_files_only=offline)
        # OpenVLA's config.json pins text_config's dtype to bfloat16 (its conversion script sets it), and
        # upstream builds the Llama with AutoModelForCausalLM.from_config, which follows that pin, not
        # from_pretrained's dtype: a float32 load would get a bf16 LLM beside fp32 vision towers and fail
        # on the first image. The requested dtype is written into the sub-config first.
        setattr(config.text_config, DTYPE_KEY, dtype)
        model = remote_model_class(target, offline, config).from_pretrained(target, config=config, **kwargs)
    except OSError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise MissingFileError(
            f"cannot load OpenVLA {source!r} ({first}); looked in {_where_looked(source)}"
        ) from None
    set_language_model_attention(model, c.get("attn_implementation"))
    if not c.get("load_in_4bit"):
        model.to(device)
    return model, processor


def resolve_norm_stats(model: nn.Module, ours: Any, unnorm_key: str | None) -> ActionNormStats:
    """Our stored stats first; else the checkpoint's norm_stats[key], the key chosen if there is one."""
    if ours is not None:
        return ours if isinstance(ours, ActionNormStats) else ActionNormStats.from_dict(ours)
    table = getattr(model.config, "norm_stats", None) or {}
    if not table:
        raise BadInputError(
            "checkpoint has no config.norm_stats; pass norm_stats={q01, q99, mask} to the policy"
        )
    if unnorm_key is None:
        if len(table) != 1:
            raise BadInputError(
                f"checkpoint has norm stats for {len(table)} datasets; choose unnorm_key from {sorted(table)}"
            )
        unnorm_key = next(iter(table))
    if unnorm_key not in table:
        raise BadInputError(f"unnorm_key {unnorm_key!r} not in the checkpoint's norm stats {sorted(table)}")
    return ActionNormStats.from_dict(table[unnorm_key])


class OpenVLAPolicy(VLAPolicy):
    family = "openvla"

    def __init__(
        self,
        model: nn.Module,
        processor: Any,
        settings: PolicySettings,
        norm_stats: ActionNormStats,
        adapter_dir: Path | None = None,
    ) -> None:
        text_cfg = model.config.text_config
        vocab_size = text_cfg.vocab_size - int(getattr(model.config, "pad_to_multiple_of", 0) or 0)
        super().__init__(model, settings, norm_stats, vocab_size, adapter_dir)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad if pad is not None else model.config.pad_token_id)
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def build(cls, cfg: Mapping[str, Any]) -> OpenVLAPolicy:
        unknown = set(cfg) - set(OPENVLA_DEFAULTS) - {"pretrained"}
        if unknown:
            raise BadInputError(
                f"unknown openvla policy keys {sorted(unknown)}; valid: {sorted(OPENVLA_DEFAULTS)}"
            )
        c = {**OPENVLA_DEFAULTS, **cfg}
        if len(c["image_keys"]) != 1:
            raise BadInputError(
                f"OpenVLA takes one camera image; image_keys={c['image_keys']} has {len(c['image_keys'])}"
            )
        source = str(c["model"])
        model, processor = load_openvla(source, c)
        if Path(source).expanduser().is_dir():
            source = str(Path(source).expanduser().resolve())  # saved policies must find it from anywhere
        return cls.from_model(model, processor, {**c, "model": source})

    @classmethod
    def from_model(cls, model: nn.Module, processor: Any, cfg: Mapping[str, Any]) -> OpenVLAPolicy:
        """Wrap an already loaded OpenVLA-format model (``cfg`` as for :meth:`build`; ``model`` names
        its source). Benchmarks use it to wrap a model built in GPU memory without a 15 GB file."""
        c = {**OPENVLA_DEFAULTS, **cfg}
        source = str(c["model"])
        stats = resolve_norm_stats(model, c["norm_stats"], c["unnorm_key"])
        settings = PolicySettings(
            family="openvla",
            finetune=c["finetune"],
            lora=LoraSettings.from_mapping(c["lora"]) if c["finetune"] == "lora" else None,
            image_keys=list(c["image_keys"]),
            image_size=int(c["image_size"]),
            use_proprio=False,
            instruction_template=c["instruction_template"],
            value_head_dims=list(c["value_head_dims"]),
            action_adapter=str(c["action_adapter"]),
            decode=str(c["decode"]),
            extra={
                "model": source,
                "lowercase_instruction": bool(c["lowercase_instruction"]),
                "empty_token_id": c["empty_token_id"],
                **{k: c[k] for k in _LOADER_KEYS if k != "device"},
            },
        )
        return cls(model, processor, settings, stats)

    @classmethod
    def from_saved(
        cls,
        path: Path,
        record: Mapping[str, Any],
        finetune: str | None = None,
        lora: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> OpenVLAPolicy:
        saved = PolicySettings.from_dict(record)
        source = saved.extra["model"]
        source = str(path / BASE_DIR) if source == BASE_DIR else source
        model, processor = load_openvla(source, {**saved.extra, "device": device})
        saved.extra["model"] = str(Path(source).resolve()) if Path(source).is_dir() else source
        model, settings, adapter_dir = restore_backbone(model, saved, path, finetune, lora)
        policy = cls(model, processor, settings, ActionNormStats.from_dict(record["norm_stats"]), adapter_dir)
        policy.load_value_head(path)
        return policy

    # ----- inputs ---------------------------------------------------------------------------------
    def _prompt_ids(self, instruction: str) -> list[int]:
        cached = self._prompt_cache.get(instruction)
        if cached is not None:
            return cached
        text = (
            instruction.strip().lower()
            if self.settings.extra.get("lowercase_instruction")
            else instruction.strip()
        )
        alone = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if alone and all(t == self.tokenizer.unk_token_id for t in alone):
            raise BadInputError(f"instruction {instruction!r} tokenizes to unknown tokens only")
        ids = list(self.tokenizer(self.settings.instruction_template.format(instruction=text))["input_ids"])
        if ids and ids[0] == self.tokenizer.bos_token_id:
            ids = ids[1:]  # <s> goes in column 0 of the batch, ahead of the vision patches
        empty = self.settings.extra.get("empty_token_id")
        if empty is not None and (not ids or ids[-1] != empty):
            ids.append(int(empty))
        self._prompt_cache[instruction] = ids
        return ids

    def prepare(self, obs: Mapping[str, np.ndarray], instructions: Sequence[str]) -> PolicyBatch:
        texts = check_instructions(instructions)
        images = get_image(obs, self.settings.image_keys[0], len(texts))
        size = self.settings.image_size
        pil = [Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS) for img in images]
        pixels = torch.as_tensor(self.processor.image_processor(pil, return_tensors="pt")["pixel_values"])
        dtype = self.model.get_input_embeddings().weight.dtype
        ids, mask = left_pad_prompts(
            [self._prompt_ids(t) for t in texts], int(self.tokenizer.bos_token_id), self._pad_id
        )
        return PolicyBatch(ids, mask, pixels.to(dtype), None, pad_token_id=self._pad_id).to(self.device)

    def _embed_prefix(self, model: nn.Module, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
        text = model.get_input_embeddings()(batch.input_ids)
        patches = model.projector(model.vision_backbone(batch.pixel_values.to(text.dtype))).to(text.dtype)
        ones = batch.attention_mask.new_ones(patches.shape[:2])
        embeds = torch.cat([text[:, :1], patches, text[:, 1:]], dim=1)
        mask = torch.cat([batch.attention_mask[:, :1], ones, batch.attention_mask[:, 1:]], dim=1)
        return embeds, mask

    # ----- persistence ----------------------------------------------------------------------------
    def _save_backbone(
        self, path: Path, state_dict: dict[str, torch.Tensor] | None, weights_changed: bool
    ) -> dict[str, Any]:
        if not weights_changed:
            # pi0 is the source checkpoint itself (LoRA / frozen): never copy 15 GB of base weights.
            return {}
        self.model.config.norm_stats = {"vla_razor": {"action": self.norm_stats.to_dict()}}
        self.model.save_pretrained(str(path), state_dict=state_dict, safe_serialization=True)
        self.processor.save_pretrained(str(path))
        return {"model": BASE_DIR}
