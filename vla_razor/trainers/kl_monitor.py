"""Forward KL(pi0 || pi) during training, on new-task states cached once, and the KL budget.

RL's Razor's predictor of forgetting needs no old-task data: only new-task states. The monitor caches
``kl_states`` of them at the start of a run (PPO/RFT: pi0's own first rollout on the new task, i.e.
the states the study's KL is measured on; BC: states of the demos), together with an action prefix
sampled from pi0 in each and pi0's per-token logits under that prefix. Each measurement is then one
teacher-forced pass of the current policy: the chain-rule estimator of
:func:`vla_razor.metrics.divergences.action_token_divergences` with one prefix per state, against
cached pi0 numbers.

The cache is written to ``<run_dir>/kl_probe.pt`` so a resumed run measures on the same states.

Given a forecaster (a calibration of forgetting against this KL, fitted by ``vla-razor forecast`` on
evaluated checkpoints of the same suite and pi0), every measurement also logs the forecast forgetting
with its prediction interval, still without any old-task data.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vla_razor.io_utils import atomic_path, write_json_atomic
from vla_razor.metrics.divergences import per_token_divergences
from vla_razor.sampling import seeded_generator
from vla_razor.trainers.distributed import DistInfo, mean_over_ranks

log = logging.getLogger(__name__)

PROBE_FILE = "kl_probe.pt"
BUDGET_FILE = "kl_budget.json"
PROBE_CHUNK = 64

# KL -> {"forecast_forgetting": ..., "forecast_forgetting_low": ..., "forecast_forgetting_high": ...}
Forecaster = Callable[[float], dict[str, float]]


@dataclass
class KLProbe:
    """Cached new-task states (one PolicyBatch), pi0's sampled prefixes [N, 7] and logits [N, 7, 256]."""

    batch: Any
    prefixes: torch.Tensor
    logits0: torch.Tensor

    @classmethod
    @torch.no_grad()
    def build(cls, policy: Any, batch: Any, seed: int) -> KLProbe:
        """pi0's numbers on ``batch`` (computed inside ``policy.reference()``, so exact for LoRA and
        full fine-tuning alike). Its own generator: the training streams are not touched."""
        generator = seeded_generator(seed, policy.device)
        prefixes, logits = [], []
        was_training = policy.training
        policy.eval()
        try:
            with policy.reference():
                for idx in _chunks(len(batch)):
                    part = batch[idx].to(policy.device)
                    prefix = policy.act(part, generator=generator).token_ids
                    prefixes.append(prefix.cpu())
                    logits.append(policy.score(part, prefix).logits.float().cpu())
        finally:
            policy.train(was_training)
        return cls(batch.to("cpu"), torch.cat(prefixes), torch.cat(logits))

    @torch.no_grad()
    def forward_kl(self, policy: Any) -> float:
        """Mean over the cached states of KL(pi0 || pi) of the joint 7-token action (nats)."""
        was_training = policy.training
        policy.eval()
        total, n = 0.0, 0
        try:
            for idx in _chunks(len(self.prefixes)):
                logits = policy.score(self.batch[idx].to(policy.device), self.prefixes[idx]).logits
                kl = per_token_divergences(self.logits0[idx], logits.float().cpu())["forward_kl"].sum(-1)
                total += float(kl.sum())
                n += len(idx)
        finally:
            policy.train(was_training)
        return total / max(n, 1)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            torch.save({"batch": self.batch, "prefixes": self.prefixes, "logits0": self.logits0}, tmp)

    @classmethod
    def load(cls, path: Path) -> KLProbe:
        data = torch.load(path, weights_only=False)
        return cls(data["batch"], data["prefixes"], data["logits0"])


def _chunks(n: int) -> list[torch.Tensor]:
    return [torch.arange(s, min(s + PROBE_CHUNK, n)) for s in range(0, n, PROBE_CHUNK)]


def evenly_spaced(n_total: int, n_wanted: int) -> torch.Tensor:
    """Indices of ``n_wanted`` states spread over ``n_total`` (every state when there are fewer)."""
    if n_total <= n_wanted:
        return torch.arange(n_total)
    return torch.linspace(0, n_total - 1, n_wanted).round().long()


class KLMonitor:
    """Owns the probe, decides when to measure, and enforces ``kl_budget``."""

    def __init__(
        self,
        settings: Any,
        run_dir: str | Path,
        dist_info: DistInfo,
        seed: int,
        forecaster: Forecaster | None = None,
    ) -> None:
        self.forecaster = forecaster
        self.every = int(settings.kl_every)
        self.n_states = int(settings.kl_states)
        self.budget = settings.kl_budget
        self.run_dir = Path(run_dir)
        self.dist_info = dist_info
        self.seed = seed
        self.probe: KLProbe | None = None
        self.last_under_budget: int | None = None

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def _probe_path(self) -> Path:
        # One probe per rank: each rank's states come from its own envs.
        suffix = f".rank{self.dist_info.rank}" if self.dist_info.enabled else ""
        return self.run_dir / f"{PROBE_FILE}{suffix}"

    def ensure_probe(self, policy: Any, make_batch: Any) -> None:
        """Load the cached probe (resume) or build it from ``make_batch()`` (a PolicyBatch)."""
        if not self.enabled or self.probe is not None:
            return
        path = self._probe_path()
        if path.is_file():
            self.probe = KLProbe.load(path)
            return
        batch = make_batch()
        self.probe = KLProbe.build(policy, batch[evenly_spaced(len(batch), self.n_states)], self.seed)
        self.probe.save(path)
        log.info("KL monitor: cached %d new-task states in %s", len(self.probe.prefixes), path)

    def due(self, step: int, saving: bool) -> bool:
        return self.enabled and (step % self.every == 0 or saving)

    def measure(self, policy: Any) -> float:
        """Forward KL averaged over ranks (every rank then takes the same budget decision)."""
        assert self.probe is not None, "ensure_probe() first"
        return mean_over_ranks(self.probe.forward_kl(policy), self.dist_info)

    def metrics(self, kl: float) -> dict[str, float]:
        """What to log for one measurement: the KL, and the forecast forgetting when calibrated."""
        out = {"forward_kl_pi0": kl}
        if self.forecaster is not None:
            out.update(self.forecaster(kl))
        return out

    def over_budget(self, kl: float, step: int) -> bool:
        """True when ``kl`` breaks the budget; records where the run stopped (rank 0)."""
        if self.budget is None:
            return False
        if kl <= self.budget:
            return False
        if self.dist_info.is_main:
            write_json_atomic(
                self.run_dir / BUDGET_FILE,
                {
                    "kl_budget": self.budget,
                    "stopped_before_step": step,
                    "forward_kl_at_stop": kl,
                    "last_checkpoint_under_budget": self.last_under_budget,
                },
            )
        log.warning(
            "KL budget: forward KL(pi0||pi) = %.4f > kl_budget = %.4f at step %d; stopping (last "
            "checkpoint under budget: %s)",
            kl,
            self.budget,
            step,
            self.last_under_budget,
        )
        return True


def read_budget_record(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / BUDGET_FILE
    return json.loads(path.read_text()) if path.is_file() else None
