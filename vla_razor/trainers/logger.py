"""Metric logging: TensorBoard by default, Weights & Biases optionally (offline works), a JSONL file
that tests and the study read back, and a one-line terminal summary per update. Rank 0 only."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from vla_razor.errors import BadInputError

log = logging.getLogger("vla_razor.train")


class MetricLogger:
    def __init__(
        self,
        run_dir: str | Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        wandb: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb = None
        self._wandb = None
        self._jsonl = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # Appending keeps the history of a resumed run in one file; entries carry their step.
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb and wandb.get("enabled"):
            try:
                import wandb as wandb_lib
            except ImportError:
                raise BadInputError(
                    "wandb.enabled=true but wandb is not installed; pip install 'vla-razor[wandb]'"
                ) from None
            self._wandb = wandb_lib.init(
                project=wandb.get("project", "vla-razor"),
                mode=wandb.get("mode", "offline"),
                dir=str(self.run_dir),
                config=config,
                name=wandb.get("name"),
            )

    def log(self, step: int, metrics: dict[str, float], *, prefix: str = "", summary: bool = True) -> None:
        if not self.enabled:
            return
        named = {f"{prefix}{k}": float(v) for k, v in metrics.items() if v is not None}
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"step": step, **named}) + "\n")
        if self._tb is not None:
            for key, value in named.items():
                if math.isfinite(value):
                    self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(named, step=step)
        if summary:
            log.info("step %d | %s", step, " ".join(f"{k}={_fmt(v)}" for k, v in named.items()))

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
