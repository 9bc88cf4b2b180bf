"""The policy interface every VLA backbone implements: prepare, act, score, value, reference, save.

All families share one computation: ``[<s>, vision prefix, left-padded prompt]`` embeddings go through
the Llama decoder; the hidden state of the last prompt token feeds both the value head and the first
action token's logits. Only the 256 action columns of the LM head are ever used (the rest are
"masked" by never being looked at), so sampling, log-probs and entropies are over the action bins.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file, save_file
from torch import nn

from vla_razor.data.normalization import ActionNormStats
from vla_razor.errors import BadInputError, MissingFileError
from vla_razor.policies.action_adapter import get_adapter
from vla_razor.policies.action_tokenizer import ActionTokenizer
from vla_razor.policies.batch import PolicyBatch
from vla_razor.policies.decoding import StaticDecoders, check_decode_mode
from vla_razor.policies.lora import LoraSettings, apply_lora, base_state_dict
from vla_razor.policies.value_head import ValueHead
from vla_razor.sampling import check_generator_device, row_gumbel

POLICY_CONFIG_NAME = "policy_config.json"
VALUE_HEAD_NAME = "value_head.safetensors"
ADAPTER_DIR = "adapter"
BASE_DIR = "base"
FORMAT_VERSION = 1
FINETUNE_MODES = ("lora", "full", "frozen")


@dataclass
class ActOutput:
    token_ids: torch.Tensor  # long [B, 7] vocabulary ids
    actions: np.ndarray  # float32 [B, 7] env scale
    log_prob: torch.Tensor  # [B] sum over the 7 tokens, under the sampling temperature
    value: torch.Tensor  # [B]


@dataclass
class ScoreOutput:
    logits: torch.Tensor  # [B, 7, 256] action-id slice (divided by the temperature)
    token_log_probs: torch.Tensor  # [B, 7]
    log_prob: torch.Tensor  # [B]
    entropy: torch.Tensor  # [B] summed over tokens
    value: torch.Tensor  # [B]


@dataclass
class PolicySettings:
    """What policy_config.json records besides the norm stats (family-specific keys in ``extra``)."""

    family: str
    finetune: str = "full"
    lora: LoraSettings | None = None
    # No defaults: each family's typed config (TinyPolicyConfig, OPENVLA_DEFAULTS) is their one source.
    image_keys: list[str] = field(kw_only=True)
    image_size: int = field(kw_only=True)
    use_proprio: bool = field(kw_only=True)
    instruction_template: str = "In: What action should the robot take to {instruction}?\nOut:"
    value_head_dims: list[int] = field(kw_only=True)
    extra: dict[str, Any] = field(default_factory=dict)
    # The checkpoint's gripper convention (see policies/action_adapter.py), applied on decode and
    # inverted on encode, so a policy trained elsewhere drives robosuite's gripper the right way round.
    action_adapter: str = "robosuite"
    # How to rebuild pi0 (a build_policy mapping) for a full fine-tune, whose reference is a frozen copy
    # taken at build time: a resumed run must rebuild pi0 from here, not from the resumed weights.
    reference: dict[str, Any] | None = None
    # The render profile (vla_razor.envs.render_profiles) of the images the policy learned from; envs
    # built for it use this profile. Policies saved before profiles existed saw the full one.
    render_profile: str = "full"
    # How act() runs the decoder (vla_razor/policies/decoding.py): eager | static | compiled. Speed only:
    # every mode gives the same tokens.
    decode: str = "eager"

    def __post_init__(self) -> None:
        check_decode_mode(self.decode)
        if self.finetune not in FINETUNE_MODES:
            raise BadInputError(f"finetune={self.finetune!r} is not one of {FINETUNE_MODES}")
        if self.finetune == "lora" and self.lora is None:
            self.lora = LoraSettings()
        if self.finetune != "lora":
            self.lora = None
        get_adapter(self.action_adapter)  # fails in one line, listing the presets
        if "{instruction}" not in self.instruction_template:
            raise BadInputError(f"instruction_template {self.instruction_template!r} lacks '{{instruction}}'")

    @property
    def input_keys(self) -> list[str]:
        """The observation keys the policy reads: its cameras' images, and proprio when it uses it."""
        return list(self.image_keys) + (["proprio"] if self.use_proprio else [])

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["lora"] = None if self.lora is None else self.lora.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicySettings:
        data = dict(data)
        data["lora"] = None if data.get("lora") is None else LoraSettings.from_mapping(data["lora"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def _positions(mask: torch.Tensor) -> torch.Tensor:
    # Count real tokens only: padding then never shifts a real token's rotary position.
    return (mask.cumsum(-1) - 1).clamp(min=0)


class VLAPolicy(nn.Module, ABC):
    family: ClassVar[str]

    def __init__(
        self,
        model: nn.Module,
        settings: PolicySettings,
        norm_stats: ActionNormStats,
        vocab_size: int,
        adapter_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.norm_stats = norm_stats
        self.action_tokenizer = ActionTokenizer(vocab_size, n_bins=256, action_dim=norm_stats.action_dim)
        hidden = model.language_model.config.hidden_size
        self.value_head = ValueHead(hidden, settings.value_head_dims)
        self.reference_model: nn.Module | None = None
        self._in_reference = False
        self.backbone: nn.Module = self._wrap_backbone(model, adapter_dir)
        self.value_head.to(self.device)
        self._decoders = StaticDecoders(settings.decode)

    # ----- construction -------------------------------------------------------------------------
    def _wrap_backbone(self, model: nn.Module, adapter_dir: Path | None) -> nn.Module:
        mode = self.settings.finetune
        if mode == "lora":
            assert self.settings.lora is not None
            if adapter_dir is not None:
                return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
            return apply_lora(model, self.settings.lora)
        if mode == "full":
            model.requires_grad_(True)
            # Costs one more copy of the backbone's weights (2x memory); LoRA avoids it.
            self.reference_model = copy.deepcopy(model).eval().requires_grad_(False)
            return model
        model.requires_grad_(False)
        return model

    @property
    def model(self) -> nn.Module:
        """The underlying HF model (LoRA layers injected in place when LoRA is on)."""
        if isinstance(self.backbone, PeftModel):
            return self.backbone.get_base_model()
        return self.backbone

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    @property
    def finetune(self) -> str:
        return self.settings.finetune

    def set_decode(self, mode: str) -> None:
        """Switch how :meth:`act` decodes (``eager``, ``static`` or ``compiled``); drops built caches."""
        self.settings.decode = check_decode_mode(mode)
        self._decoders = StaticDecoders(mode)

    @contextmanager
    def merged_adapter(self) -> Iterator[VLAPolicy]:
        """Inside, the LoRA update is merged into the weights (peft ``merge_adapter``): inference runs
        without the adapters' extra kernels. On exit it is subtracted again; in bfloat16 that leaves each
        weight within one rounding step of where it was, so use it around inference, not between
        training steps. A policy without LoRA is left as it is."""
        if not isinstance(self.backbone, PeftModel):
            yield self
            return
        if self._in_reference:
            raise BadInputError("merged_adapter() inside reference(): pi0 has no adapter to merge")
        self.backbone.merge_adapter()
        try:
            yield self
        finally:
            self.backbone.unmerge_adapter()

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the decoder layers' activations in the backward pass (HF's gradient checkpointing on
        the language model; the non-reentrant variant, which needs no input that requires grad, as under
        LoRA). It acts in train mode only: decoding and scoring without gradients are unchanged."""
        self.model.language_model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Backbone (without the frozen reference copy) + value head."""
        params = list(self.backbone.parameters()) + list(self.value_head.parameters())
        return sum(p.numel() for p in params if p.requires_grad or not trainable_only)

    # ----- family hooks ---------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, obs: Mapping[str, np.ndarray], instructions: Sequence[str]) -> PolicyBatch:
        """Vector-env observations + instructions -> a PolicyBatch on the policy's device."""

    @abstractmethod
    def _embed_prefix(self, model: nn.Module, batch: PolicyBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """[<s>, vision tokens, prompt] embeddings [B, L, D] and their attention mask [B, L]."""

    @abstractmethod
    def _save_backbone(
        self, path: Path, state_dict: dict[str, torch.Tensor] | None, weights_changed: bool
    ) -> dict[str, Any]:
        """Write the backbone (``state_dict`` or the model's own); return keys to merge into ``extra``.

        ``weights_changed`` is False when the weights to write are the ones the policy was loaded from
        (pi0 under LoRA, or a frozen model): a family may then record its source instead of copying.
        """

    # ----- the reference policy -------------------------------------------------------------------
    @contextmanager
    def reference(self) -> Iterator[VLAPolicy]:
        """Inside, this policy computes pi0: adapters disabled (LoRA) or the frozen copy (full)."""
        if self._in_reference:
            yield self
            return
        self._in_reference = True
        try:
            if isinstance(self.backbone, PeftModel):
                with self.backbone.disable_adapter():
                    yield self
            else:
                yield self
        finally:
            self._in_reference = False

    def _active_model(self) -> nn.Module:
        if self._in_reference and self.reference_model is not None:
            return self.reference_model
        return self.model

    # ----- core computations ----------------------------------------------------------------------
    def _action_logits(self, model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        head = model.language_model.get_output_embeddings()
        logits = head(hidden)[..., self.action_tokenizer.action_slice]
        return logits.float()

    def forward(self, batch: PolicyBatch, token_ids: torch.Tensor) -> ScoreOutput:
        """``score`` as ``forward`` so that DDP(policy)(batch, token_ids) synchronises gradients."""
        return self.score(batch, token_ids)

    @torch.no_grad()
    def act(
        self,
        batch: PolicyBatch,
        *,
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> ActOutput:
        """Sample (or argmax) 7 action tokens with the KV cache: one prompt pass + 6 one-token passes,
        run as ``settings.decode`` says (:mod:`vla_razor.policies.decoding`).

        ``generator`` is one generator for the whole batch, or a sequence of CPU generators, one per row
        (each row then samples from its own stream: :func:`vla_razor.sampling.row_gumbel`).
        """
        if not greedy and not temperature > 0:
            raise BadInputError(f"temperature={temperature} must be > 0 when sampling (use greedy=True)")
        temperature = float(temperature) if temperature > 0 else 1.0
        per_row = isinstance(generator, Sequence)
        if per_row and len(generator) != len(batch):
            raise ValueError(f"{len(generator)} row generators for a batch of {len(batch)}")
        if not greedy and not per_row:
            check_generator_device(generator, self.device)
        model = self._active_model()
        batch = batch.to(self.device)
        embed = model.get_input_embeddings()
        embeds, mask = self._embed_prefix(model, batch)
        positions = _positions(mask)
        dim = self.action_tokenizer.action_dim
        run = self._decoders.run(model.language_model.get_decoder(), new_tokens=dim - 1)
        hidden = run.prefill(embeds, mask, positions)
        value = self.value_head(hidden)
        next_pos = positions[:, -1:] + 1
        slots, log_prob = [], torch.zeros(len(batch), device=self.device)
        for k in range(dim):
            logp = F.log_softmax(self._action_logits(model, hidden) / temperature, dim=-1)
            if greedy:
                slot = logp.argmax(-1)
            elif per_row:
                slot = (logp + row_gumbel(generator, logp.shape[-1], logp.device)).argmax(-1)
            else:
                slot = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
            slots.append(slot)
            log_prob += logp.gather(-1, slot[:, None]).squeeze(-1)
            if k == dim - 1:
                break
            ids = self.action_tokenizer.bin_slots_to_ids(slot)
            hidden = run.step(embed(ids)[:, None], next_pos)
            next_pos = next_pos + 1
        token_ids = self.action_tokenizer.bin_slots_to_ids(torch.stack(slots, dim=1))
        return ActOutput(
            token_ids=token_ids, actions=self.decode_actions(token_ids), log_prob=log_prob, value=value
        )

    @torch.no_grad()
    def action_features(self, batch: PolicyBatch) -> torch.Tensor:
        """The decoder's last hidden state at the action position [B, H]: the representation the first
        action token (and the value head) is read from. Inside ``reference()`` it is pi0's."""
        model = self._active_model()
        batch = batch.to(self.device)
        embeds, mask = self._embed_prefix(model, batch)
        hidden = model.language_model.get_decoder()(
            inputs_embeds=embeds,
            attention_mask=None if bool(mask.all()) else mask,
            position_ids=_positions(mask),
            use_cache=False,
        ).last_hidden_state
        return hidden[:, -1]

    @torch.no_grad()
    def value(self, batch: PolicyBatch) -> torch.Tensor:
        """Value estimates [B] from one prompt pass (no decoding): for bootstrapping at truncation."""
        return self.value_head(self.action_features(batch))

    def score(self, batch: PolicyBatch, token_ids: torch.Tensor, *, temperature: float = 1.0) -> ScoreOutput:
        """Teacher-forced: ONE forward pass over [prefix, first 6 action tokens] (gradients flow)."""
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        dim = self.action_tokenizer.action_dim
        if token_ids.ndim != 2 or token_ids.shape[1] != dim:
            raise ValueError(f"token_ids must be [B, {dim}], got shape {tuple(token_ids.shape)}")
        model = self._active_model()
        batch = batch.to(self.device)
        token_ids = token_ids.to(self.device).long()
        slots = self.action_tokenizer.ids_to_bin_slots(token_ids)
        embeds, mask = self._embed_prefix(model, batch)
        prompt_len = embeds.shape[1]
        inputs = torch.cat([embeds, model.get_input_embeddings()(token_ids[:, :-1])], dim=1)
        full_mask = torch.cat([mask, mask.new_ones((len(batch), dim - 1))], dim=1)
        attn = None if bool(full_mask.all()) else full_mask
        decoder = model.language_model.get_decoder()
        hidden = decoder(
            inputs_embeds=inputs, attention_mask=attn, position_ids=_positions(full_mask), use_cache=False
        ).last_hidden_state
        action_hidden = hidden[:, prompt_len - 1 :]  # position t predicts action token t
        logits = self._action_logits(model, action_hidden) / temperature
        logp = F.log_softmax(logits, dim=-1)
        token_log_probs = logp.gather(-1, slots[..., None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1).sum(-1)
        value = self.value_head(hidden[:, prompt_len - 1])
        return ScoreOutput(
            logits=logits,
            token_log_probs=token_log_probs,
            log_prob=token_log_probs.sum(-1),
            entropy=entropy,
            value=value,
        )

    def decode_actions(self, token_ids: torch.Tensor) -> np.ndarray:
        """Vocabulary ids [B, 7] -> env-scale float32 actions (bin centers, then unnormalised)."""
        norm = self.action_tokenizer.decode(token_ids.detach().cpu().numpy())
        return get_adapter(self.settings.action_adapter).to_env(self.norm_stats.unnormalize(norm))

    def encode_actions(self, actions: np.ndarray) -> torch.Tensor:
        """Env-scale actions [B, 7] -> vocabulary ids (BC targets)."""
        actions = get_adapter(self.settings.action_adapter).from_env(np.asarray(actions, dtype=np.float32))
        ids = self.action_tokenizer.encode(self.norm_stats.normalize(actions))
        return torch.as_tensor(ids, dtype=torch.long, device=self.device)

    # ----- persistence ----------------------------------------------------------------------------
    def _write(
        self,
        path: Path,
        settings: PolicySettings,
        state_dict: dict[str, torch.Tensor] | None,
        weights_changed: bool,
    ) -> None:
        path.mkdir(parents=True, exist_ok=True)
        extra = self._save_backbone(path / BASE_DIR, state_dict, weights_changed)
        settings = replace(settings, extra={**settings.extra, **extra})
        if settings.finetune == "lora":
            # No embedding layers are adapted; saying so skips peft's vocabulary-size probe of the base.
            self.backbone.save_pretrained(str(path / ADAPTER_DIR), save_embedding_layers=False)
        save_file(
            {k: v.contiguous() for k, v in self.value_head.state_dict().items()}, str(path / VALUE_HEAD_NAME)
        )
        record = {
            "format": "vla-razor-policy",
            "format_version": FORMAT_VERSION,
            **settings.to_dict(),
            "norm_stats": self.norm_stats.to_dict(),
        }
        (path / POLICY_CONFIG_NAME).write_text(json.dumps(record, indent=2))

    def save_pretrained(
        self, path: str | Path, backbone_state: dict[str, torch.Tensor] | None = None
    ) -> None:
        """policy_config.json + value head + backbone (pi0 weights and adapter alone when LoRA is on).

        ``backbone_state`` overrides the backbone's own state dict (an FSDP-sharded backbone passes its
        gathered full state, see trainers/fsdp.py)."""
        state = base_state_dict(self.model) if isinstance(self.backbone, PeftModel) else backbone_state
        self._write(Path(path), self.settings, state, weights_changed=self.finetune == "full")

    def merge_and_export(self, path: str | Path) -> None:
        """Write a stand-alone (finetune='frozen') policy with the LoRA update merged into the weights."""
        if not isinstance(self.backbone, PeftModel):
            raise ValueError(f"merge_and_export needs a LoRA policy; this one has finetune={self.finetune!r}")
        # Merge in place and undo afterwards: no second copy of a 7B model just to export it.
        self.backbone.merge_adapter()
        try:
            state = base_state_dict(self.model)
            self._write(Path(path), replace(self.settings, finetune="frozen", lora=None), state, True)
        finally:
            self.backbone.unmerge_adapter()

    def load_value_head(self, path: Path) -> None:
        file = path / VALUE_HEAD_NAME
        if file.exists():
            self.value_head.load_state_dict(load_file(str(file), device=str(self.device)))


def read_policy_record(path: str | Path) -> dict[str, Any]:
    """The saved policy_config.json; a path that is not a saved policy fails in one line naming it."""
    p = Path(path)
    file = p / POLICY_CONFIG_NAME
    if not file.is_file():
        what = "does not exist" if not p.exists() else f"has no {POLICY_CONFIG_NAME}"
        raise MissingFileError(f"not a vla-razor policy checkpoint: {str(p)!r} {what}")
    try:
        record = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(f"corrupt policy checkpoint {str(file)!r}: {err}") from None
    if record.get("format") != "vla-razor-policy":
        raise BadInputError(
            f"not a vla-razor policy checkpoint: {str(file)!r} lacks format='vla-razor-policy'"
        )
    return record


def restore_backbone(
    model: nn.Module,
    saved: PolicySettings,
    path: Path,
    finetune: str | None,
    lora: Mapping[str, Any] | None,
) -> tuple[nn.Module, PolicySettings, Path | None]:
    """Decide how a loaded backbone continues: same adapter, merged adapter, or a fresh one.

    A saved LoRA adapter is reloaded as is when the mode stays 'lora' with no new LoRA settings; any other
    request merges it into the weights first, so the merged weights become the new pi0.
    """
    mode = finetune or saved.finetune
    adapter_dir: Path | None = path / ADAPTER_DIR if saved.finetune == "lora" else None
    if adapter_dir is not None and (mode != "lora" or lora is not None):
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        adapter_dir = None
    lora_settings = LoraSettings.from_mapping(lora) if lora is not None else saved.lora
    settings = replace(saved, finetune=mode, lora=lora_settings if mode == "lora" else None)
    return model, settings, adapter_dir
